"""``aura transcribe`` / ``aura ask``: the encoder-free model (:mod:`pipeline.infer`) over audio files
and folders, one JSON line per file; a bad file gets an ``error`` line and the others go on.

    aura transcribe clips/*.wav --out transcripts.jsonl --batch-size 8
    aura ask question.wav --prompt "Answer the question asked in the audio with a single word."
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from pipeline.config import IngestConfig
from pipeline.decoding import GenerationResult
from pipeline.infer import EncoderFreeModel

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Many files -> JSON records
# --------------------------------------------------------------------------------------------------


def expand_audio_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the audio files under them (sorted). Missing paths are kept
    so that they get an error record of their own."""
    from pipeline.data.audio import AUDIO_EXTENSIONS

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            out.extend(found or [path])  # an empty folder is reported, not silently skipped
        else:
            out.append(path)
    return out


def load_request_audio(path: Path, ingest: IngestConfig) -> np.ndarray:
    """16 kHz mono samples of one file, or :class:`AudioRejected` with a reason a person can act on."""
    from pipeline.data.audio import AUDIO_EXTENSIONS, AudioRejected, load_checked

    if path.is_dir():
        raise AudioRejected(f"folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    if not path.exists():
        raise AudioRejected("file not found")
    try:
        return load_checked(path, ingest).samples
    except AudioRejected:
        raise
    except OSError as exc:  # permissions, I/O errors
        raise AudioRejected(f"unreadable: {exc.strerror or exc}") from None


def answer_files(model: EncoderFreeModel, paths: Sequence[str | Path], instruction: str, *,
                 ingest: IngestConfig | None = None, batch_size: int = 8, max_new_tokens: int = 48,
                 read_out: str = "auto", on_progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Answer ``instruction`` for every file, ``batch_size`` at a time; yields one record per file, in order.
    ``read_out``: ``generate`` (the LLM answers after the audio), ``ctc`` (:meth:`EncoderFreeModel.answer_via_ctc`) or
    ``auto`` (:meth:`EncoderFreeModel.read_out`).

    A good file gives ``{"file", "text", "instruction", "duration_s", "num_audio_tokens", "prompt_tokens",
    "new_tokens", "finish_reason", "latency_s", "time_to_first_token_s", "batch_size"}``; a bad one
    (missing, unreadable, empty, silent, too long: the checks of ``aura ingest``) gives
    ``{"file", "error"}`` and the others go on. A batch that fails as a whole (e.g. out of memory)
    is retried one file at a time.

    >>> for record in answer_files(model, ["a.wav", "missing.wav"], "Transcribe the audio."):   # doctest: +SKIP
    ...     print(record)
    {'file': 'a.wav', 'text': 'hello world', ...}
    {'file': 'missing.wav', 'error': 'file not found'}
    """
    from pipeline.data.audio import AudioRejected

    ingest = ingest or IngestConfig()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for first in range(0, len(paths), batch_size):
        chunk = [Path(p) for p in paths[first:first + batch_size]]
        records: list[dict | None] = [None] * len(chunk)
        good: list[tuple[int, np.ndarray]] = []
        for i, path in enumerate(chunk):
            try:
                good.append((i, load_request_audio(path, ingest)))
            except AudioRejected as exc:
                records[i] = {"file": str(path), "error": exc.reason}
        durations = {i: round(len(audio) / ingest.sample_rate, 3) for i, audio in good}
        for i, result in _generate_robustly(model, good, instruction, max_new_tokens, read_out):
            if isinstance(result, GenerationResult):
                records[i] = {"file": str(chunk[i]), "text": result.text, "instruction": instruction,
                              "duration_s": durations[i],
                              **{k: v for k, v in result.to_dict().items() if k != "text"},
                              "batch_size": len(good)}
            else:
                records[i] = {"file": str(chunk[i]), "error": result}
        yield from records
        if on_progress is not None:
            on_progress(len(chunk))


def answer_robustly(answer_batch: Callable[[list[np.ndarray], list[str]], list], audios: list[np.ndarray],
                    instructions: list[str]) -> list:
    """``answer_batch(audios, instructions)``; when the whole batch fails, one request at a time. A request
    that fails alone gets its error text in place of a result."""
    try:
        return answer_batch(audios, instructions)
    except Exception as exc:  # noqa: BLE001 - one bad batch must not end a long job
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(audios) == 1:
            logger.warning("generation failed: %s: %s", type(exc).__name__, exc)
            return [f"generation failed: {type(exc).__name__}: {exc}"]
        logger.warning("batch of %d failed (%s: %s); retrying one request at a time", len(audios), type(exc).__name__, exc)
        return [r for a, i in zip(audios, instructions) for r in answer_robustly(answer_batch, [a], [i])]


def _generate_robustly(model: EncoderFreeModel, good: list[tuple[int, np.ndarray]], instruction: str,
                       max_new_tokens: int, read_out: str = "auto") -> list[tuple[int, GenerationResult | str]]:
    if not good:
        return []
    results = answer_robustly(lambda audios, instructions: model.answer(audios, instructions, max_new_tokens, read_out),
                              [a for _, a in good], [instruction] * len(good))
    return [(i, r) for (i, _), r in zip(good, results)]
