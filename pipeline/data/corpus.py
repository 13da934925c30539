"""A synthetic speech corpus (eSpeak NG) for demos and tests: transcription and spoken QA.

Every utterance is planned from the seed alone (text, task, voice, rate, pitch, split), then
rendered to 16 kHz FLAC, and a ``manifest.jsonl`` is written last (its presence means the corpus
is complete). The same seed gives the same manifest and byte-identical audio, with any number
of workers.

Two tasks:

* ``transcribe``: a natural English sentence built from templates and word lists; the target
  is the sentence itself (numbers are written as words, so the text is what is spoken).
* ``spoken_qa``: a short spoken question with a one- or two-word reference answer, from six
  families: arithmetic, capitals, opposites, colors, letter counts, weekdays.

The held-out split is disjoint from train in both voice and text: held-out rows use only
held-out voices and held-out texts (for QA, held-out *facts*, so no phrasing of a held-out
question is ever trained on).

Usage::

    >>> from pathlib import Path
    >>> from pipeline.data.corpus import generate_corpus, load_manifest
    >>> manifest = generate_corpus(Path("corpus"), 200, seed=0, workers=2)  # doctest: +SKIP
    >>> rows = load_manifest(manifest)                                     # doctest: +SKIP
    >>> rows[1]                                                            # doctest: +SKIP
    {'key': 'espeak-s0-000001', 'audio': 'audio/espeak-s0-000001.flac',
     'text': 'What do you get if you add four and three?', 'task': 'spoken_qa',
     'question': 'What do you get if you add four and three?', 'answer': 'seven',
     'target': 'seven', 'qa_family': 'arithmetic', 'qa_fact': 'plus:4:3',
     'voice': 'en-us-nyc+f5', 'speaker': 'espeak:en-us-nyc+f5', 'split': 'train',
     'rate': 170, 'pitch': 34, 'sample_rate': 16000, 'num_samples': 36508, 'duration': 2.2818}

``target`` is what a model should output: the sentence for ``transcribe``, the answer for
``spoken_qa``. ``qa_fact`` names the fact behind a question (all its phrasings share it).

Planning without audio (fast; what the split tests use; :mod:`pipeline.data.corpus_plan`, the sentences
from :mod:`pipeline.data.templates`)::

    >>> from pipeline.data.corpus_plan import plan_corpus
    >>> plan = plan_corpus(num_utterances=10, seed=0)
    >>> [u.split for u in plan]
    ['train', 'train', 'train', 'train', 'heldout', 'train', 'train', 'train', 'train', 'heldout']
    >>> [u.task for u in plan][:4]
    ['transcribe', 'spoken_qa', 'transcribe', 'spoken_qa']
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from pipeline.data.corpus_plan import SPLITS, PlannedUtterance, plan_corpus
from pipeline.data.manifest import MANIFEST_NAME, TASKS
from pipeline.data.qa import (  # noqa: F401  (QA facts live in qa.py; re-exported here)
    QA_FAMILIES,
    QAFact,
    number_to_words,
    spoken_qa_facts,
)
from pipeline.data.tts import SAMPLE_RATE, synthesize
from pipeline.fs import atomic_write_text
from pipeline.workers import worker_pool

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"

# ---------------------------------------------------------------------------------------------
# Rendering


def _render(utterance: PlannedUtterance, out_dir: str) -> int:
    """Synthesize one utterance to 16-bit FLAC; returns its number of samples."""
    audio = synthesize(utterance.text, voice=utterance.voice, rate=utterance.rate,
                       pitch=utterance.pitch)
    return write_flac(Path(out_dir) / utterance.audio, audio)


def write_flac(path: Path, audio: np.ndarray) -> int:
    """16 kHz float audio to a 16-bit FLAC file, atomically (temp file + rename); returns its samples."""
    # Quantize here (not in libsndfile) so the stored samples are exactly round(x * 32768).
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    sf.write(partial, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    os.replace(partial, path)
    return len(pcm)


def _render_star(args: tuple[PlannedUtterance, str]) -> int:
    return _render(*args)


@dataclass(frozen=True)
class CorpusSummary:
    """What a :func:`generate_corpus` run produced and how fast (written to ``summary.json``)."""

    num_utterances: int
    audio_seconds: float
    wall_seconds: float
    audio_seconds_per_wall_second: float
    workers: int
    rows_per_split: dict[str, int]
    rows_per_task: dict[str, int]
    voices_per_split: dict[str, int]

    def describe(self) -> str:
        return (f"{self.num_utterances} utterances, {self.audio_seconds:.1f} s of audio in "
                f"{self.wall_seconds:.1f} s ({self.audio_seconds_per_wall_second:.0f}x real time, "
                f"{self.workers} worker(s)); splits {self.rows_per_split}, tasks "
                f"{self.rows_per_task}, voices {self.voices_per_split}")


def generate_corpus(
    out_dir: Path,
    num_utterances: int,
    seed: int,
    *,
    workers: int = 1,
    progress: bool = True,
    **plan_options,
) -> Path:
    """Synthesize a corpus into ``out_dir`` and return the path of its ``manifest.jsonl``.

    Writes ``out_dir/audio/<key>.flac`` (16 kHz mono, 16-bit), then ``manifest.jsonl`` (one
    JSON object per line, in key order; see the module docstring for the fields) and
    ``summary.json`` (a :class:`CorpusSummary`: audio seconds, wall seconds, speed).

    Args:
        out_dir: created if missing; existing files with the same names are replaced.
        num_utterances: how many rows.
        seed: same seed and options -> identical manifest and byte-identical FLAC files.
        workers: processes rendering in parallel (1 = in this process). Workers are started
            with ``spawn``, so a script that asks for several must call this under
            ``if __name__ == "__main__":``.
        progress: show a tqdm bar.
        **plan_options: passed to :func:`plan_corpus` (voices, heldout_fraction,
            spoken_qa_fraction, rate_range, pitch_range, num_sentences).

    >>> manifest = generate_corpus(Path("demo"), num_utterances=12, seed=0)  # doctest: +SKIP
    >>> json.loads(manifest.read_text().splitlines()[0])["task"]            # doctest: +SKIP
    'transcribe'
    """
    out_dir = Path(out_dir)
    if workers < 1:
        raise ValueError("workers must be >= 1")
    started = time.perf_counter()
    plan = plan_corpus(num_utterances, seed, **plan_options)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)

    jobs = [(utterance, str(out_dir)) for utterance in plan]
    bar = tqdm(total=len(plan), desc="synthesizing corpus", unit="utt", disable=not progress)
    num_samples: list[int] = []
    if workers == 1 or len(plan) <= 1:
        for job in jobs:
            num_samples.append(_render_star(job))
            bar.update()
    else:
        with worker_pool(workers) as pool:
            chunksize = max(1, min(16, len(jobs) // (4 * workers)))
            for count in pool.map(_render_star, jobs, chunksize=chunksize):
                num_samples.append(count)
                bar.update()
    bar.close()

    manifest = out_dir / MANIFEST_NAME
    partial = manifest.with_name(manifest.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for utterance, count in zip(plan, num_samples):
            row = asdict(utterance)
            row.update(sample_rate=SAMPLE_RATE, num_samples=count,
                       duration=round(count / SAMPLE_RATE, 4))
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(partial, manifest)  # written last: a manifest means the corpus is complete

    wall = time.perf_counter() - started
    audio_seconds = sum(num_samples) / SAMPLE_RATE
    summary = CorpusSummary(
        num_utterances=len(plan),
        audio_seconds=round(audio_seconds, 3),
        wall_seconds=round(wall, 3),
        audio_seconds_per_wall_second=round(audio_seconds / wall, 2) if wall > 0 else 0.0,
        workers=workers,
        rows_per_split={s: sum(u.split == s for u in plan) for s in SPLITS},
        rows_per_task={t: sum(u.task == t for u in plan) for t in TASKS},
        voices_per_split={s: len({u.voice for u in plan if u.split == s}) for s in SPLITS},
    )
    atomic_write_text(out_dir / SUMMARY_NAME, json.dumps(asdict(summary), indent=2) + "\n")
    logger.debug("corpus %s: %s", out_dir, summary.describe())
    if progress:
        print(summary.describe(), file=sys.stderr)
    return manifest


def load_manifest(path: Path) -> list[dict]:
    """Rows of a ``manifest.jsonl`` (audio paths are relative to its folder)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_summary(out_dir: Path) -> CorpusSummary:
    """The :class:`CorpusSummary` a :func:`generate_corpus` run left in ``out_dir``."""
    return CorpusSummary(**json.loads((Path(out_dir) / SUMMARY_NAME).read_text()))
