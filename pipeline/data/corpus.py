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
     'voice': 'en-us-nyc+f5', 'rate': 170, 'pitch': 34, 'speaker': 'espeak:en-us-nyc+f5',
     'split': 'train', 'sample_rate': 16000, 'num_samples': 36508, 'duration': 2.2818}

``target`` is what a model should output: the sentence for ``transcribe``, the answer for
``spoken_qa``. ``qa_fact`` names the fact behind a question (all its phrasings share it).

Planning without audio (fast; what the split tests use)::

    >>> from pipeline.data.corpus import plan_corpus
    >>> plan = plan_corpus(num_utterances=10, seed=0)
    >>> [u.split for u in plan]
    ['train', 'train', 'train', 'train', 'heldout', 'train', 'train', 'train', 'train', 'heldout']
    >>> [u.task for u in plan][:4]
    ['transcribe', 'spoken_qa', 'transcribe', 'spoken_qa']
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from pipeline.data.qa import (  # noqa: F401  (QA facts live in qa.py; re-exported here)
    QA_FAMILIES,
    QAFact,
    number_to_words,
    spoken_qa_facts,
)
from pipeline.data.tts import SAMPLE_RATE, list_voices, synthesize

logger = logging.getLogger(__name__)

TASKS = ("transcribe", "spoken_qa")
SPLITS = ("train", "heldout")
MANIFEST_NAME = "manifest.jsonl"
SUMMARY_NAME = "summary.json"

# ---------------------------------------------------------------------------------------------
# Transcription sentences: templates whose slots only take values that make sense together

_NAMES = ("Maria", "Tom", "Anna", "David", "Sarah", "James", "Emma", "Peter", "Lucy", "Daniel",
          "Grace", "Oliver", "Nina", "Samuel", "Laura", "Henry", "Sophie", "Michael")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CITIES = ("London", "Paris", "Boston", "Chicago", "Madrid", "Dublin", "Denver", "Toronto",
           "Sydney", "Berlin", "Seattle", "Glasgow")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _animal_sentence(rng: random.Random) -> str:
    adjective = rng.choice(("small", "big", "old", "young", "tired", "happy", "quiet", "hungry",
                            "lazy", "brown", "gray", "curious"))
    animal = rng.choice(("dog", "cat", "horse", "rabbit", "fox", "goat", "duck", "sheep", "deer",
                         "pony"))
    verb = rng.choice(("ran", "walked", "jumped", "wandered", "hurried", "trotted"))
    path = rng.choice(("across the garden", "through the forest", "along the river",
                       "into the barn", "over the fence", "around the lake", "down the hill",
                       "past the old church", "towards the farmhouse", "across the field"))
    return f"The {adjective} {animal} {verb} {path}."


def _found_object_sentence(rng: random.Random) -> str:
    name = rng.choice(_NAMES)
    verb = rng.choice(("bought", "found", "lost", "borrowed", "forgot", "painted", "sold"))
    adjective = rng.choice(("red", "old", "heavy", "orange", "tiny", "wooden", "expensive",
                            "yellow", "green", "antique"))
    thing = rng.choice(("umbrella", "bicycle", "lamp", "suitcase", "guitar", "clock", "chair",
                        "mirror", "kettle", "notebook"))
    when = rng.choice(("yesterday morning", "last week", "on Saturday", "this afternoon",
                       "a few days ago", "at the market", "in the old town", "last summer"))
    return f"{name} {verb} {_article(adjective)} {adjective} {thing} {when}."


def _request_sentence(rng: random.Random) -> str:
    request = rng.choice(("close the window", "turn off the lights", "pass me the salt",
                          "call me back", "open the front door", "bring the blue folder",
                          "read the last page again", "wait for me at the station",
                          "water the plants", "check the train times", "lock the back door",
                          "send me the address"))
    ending = rng.choice(("", " before lunch", " when you have a moment", " this evening",
                         " after the meeting", " tomorrow morning"))
    opener = rng.choice(("Could you please", "Would you", "Can you"))
    return f"{opener} {request}{ending}?"


def _habit_sentence(rng: random.Random) -> str:
    relative = rng.choice(("brother", "sister", "mother", "father", "uncle", "aunt", "cousin",
                           "neighbor", "grandmother", "best friend"))
    habit = rng.choice(("plays tennis", "bakes fresh bread", "visits the library",
                        "goes swimming", "cooks dinner for everyone", "walks to work",
                        "reads the newspaper", "calls home", "goes to the gym",
                        "works from home", "cleans the whole house"))
    day = rng.choice(_WEEKDAYS)
    return f"My {relative} {habit} every {day}."


def _weather_sentence(rng: random.Random) -> str:
    weather = rng.choice(("sunny", "cold", "windy", "rainy", "cloudy", "warm", "foggy", "snowy",
                          "very hot", "quite mild"))
    city = rng.choice(_CITIES)
    when = rng.choice(("tomorrow", "this weekend", "on Monday", "tonight", "next week",
                       "all day", "in the afternoon"))
    lead = rng.choice(("It will be", "The forecast says it will be", "They say it will be"))
    return f"{lead} {weather} in {city} {when}."


def _plan_sentence(rng: random.Random) -> str:
    subject = rng.choice(("We", "I", "They", "You"))
    need = rng.choice(("need to", "have to", "should", "want to", "forgot to"))
    task = rng.choice(("finish the report", "clean the kitchen", "pack our bags", "buy some milk",
                       "fix the bicycle", "paint the fence", "book the tickets",
                       "answer the emails", "feed the cat", "return the library books"))
    deadline = rng.choice(("the meeting starts", "the guests arrive", "the shop closes",
                           "it gets dark", "the train leaves", "the end of the month",
                           "the weekend"))
    if subject != "We":
        task = task.replace(" our ", " the ")
    return f"{subject} {need} {task} before {deadline}."


_COUNTABLE_PLACES = {
    "books": ("on the shelf", "in the box", "on the desk"),
    "apples": ("in the basket", "on the table", "in the bowl"),
    "chairs": ("in the kitchen", "around the table", "in the hall"),
    "cups": ("in the sink", "on the tray", "in the cupboard"),
    "birds": ("on the roof", "in the tree", "on the wire"),
    "boats": ("in the harbor", "on the lake", "near the pier"),
    "pencils": ("in the drawer", "on the desk", "in the jar"),
    "children": ("in the park", "on the bus", "in the classroom"),
}


def _count_sentence(rng: random.Random) -> str:
    things = rng.choice(sorted(_COUNTABLE_PLACES))
    place = rng.choice(_COUNTABLE_PLACES[things])
    count = number_to_words(rng.randint(2, 19))
    return f"There are {count} {things} {place}."


def _timetable_sentence(rng: random.Random) -> str:
    vehicle = rng.choice(("train", "bus", "ferry", "plane", "coach"))
    city = rng.choice(_CITIES)
    hour = number_to_words(rng.randint(1, 12))
    clock = rng.choice((f"{hour} o'clock", f"half past {hour}", f"a quarter to {hour}",
                        f"a quarter past {hour}"))
    verb = rng.choice(("leaves at", "arrives at", "is delayed until"))
    return f"The {vehicle} to {city} {verb} {clock}."


# thing -> (praise, complaints); "complained" only goes with a complaint
_OPINIONS = {
    "soup": (("delicious", "just right"), ("too salty", "still cold")),
    "movie": (("wonderful", "really funny"), ("boring", "far too long")),
    "concert": (("amazing", "worth every penny"), ("too loud", "badly organized")),
    "hotel": (("very clean", "close to the beach"), ("too expensive", "quite noisy")),
    "book": (("hard to put down", "beautifully written"), ("rather slow", "too short")),
    "coffee": (("perfect", "surprisingly good"), ("too strong", "lukewarm")),
    "lecture": (("interesting", "very useful"), ("hard to follow", "over too quickly")),
}


def _opinion_sentence(rng: random.Random) -> str:
    name = rng.choice(_NAMES)
    thing = rng.choice(sorted(_OPINIONS))
    praise, complaints = _OPINIONS[thing]
    if rng.random() < 0.5:
        opinion, verb = rng.choice(praise), rng.choice(("said", "thought", "told me"))
    else:
        opinion, verb = rng.choice(complaints), rng.choice(("said", "thought", "complained"))
    return f"{name} {verb} that the {thing} was {opinion}."


def _question_sentence(rng: random.Random) -> str:
    form = rng.randrange(3)
    if form == 0:
        thing = rng.choice(("keys", "tickets", "umbrella", "letters", "camera", "map", "glasses"))
        verb = rng.choice(("put", "leave", "find", "hide"))
        return f"Where did you {verb} the {thing}?"
    if form == 1:
        place = rng.choice(("museum", "bakery", "post office", "swimming pool", "library",
                            "pharmacy", "bank"))
        day = rng.choice(("on Sunday", "tomorrow", "in the morning", "after the holidays",
                          "on weekdays"))
        return f"When does the {place} open {day}?"
    name = rng.choice(_NAMES)
    activity = rng.choice(("moving to", "flying to", "studying in", "working in"))
    return f"Is {name} really {activity} {rng.choice(_CITIES)} next year?"


SENTENCE_TEMPLATES: dict[str, Callable[[random.Random], str]] = {
    "animal": _animal_sentence,
    "object": _found_object_sentence,
    "request": _request_sentence,
    "habit": _habit_sentence,
    "weather": _weather_sentence,
    "plan": _plan_sentence,
    "count": _count_sentence,
    "timetable": _timetable_sentence,
    "opinion": _opinion_sentence,
    "question": _question_sentence,
}
"""Sentence families, each a function of a seeded RNG; every family has thousands of fills."""


def transcription_sentences(seed: int, count: int = 400) -> list[tuple[str, str]]:
    """``count`` distinct (template family, sentence) pairs, the same for the same seed.

    Families are visited round-robin so each contributes about ``count / 10`` sentences.

    >>> transcription_sentences(seed=0, count=2)  # doctest: +NORMALIZE_WHITESPACE
    [('animal', 'The lazy goat trotted across the field.'),
     ('object', 'Emma found a yellow chair a few days ago.')]
    """
    rng = random.Random(f"aura-corpus-sentences:{seed}")
    families = list(SENTENCE_TEMPLATES)
    seen: set[str] = set()
    sentences: list[tuple[str, str]] = []
    attempts = 0
    while len(sentences) < count:
        family = families[len(sentences) % len(families)]
        sentence = SENTENCE_TEMPLATES[family](rng)
        attempts += 1
        if attempts > 100 * count + 1000:
            raise ValueError(f"could not build {count} distinct sentences; ask for fewer")
        if sentence not in seen:
            seen.add(sentence)
            sentences.append((family, sentence))
    return sentences


# ---------------------------------------------------------------------------------------------
# Planning: who says what, in which split


@dataclass(frozen=True)
class PlannedUtterance:
    """One manifest row before its audio exists."""

    key: str
    audio: str
    text: str
    task: str
    question: str | None
    answer: str | None
    target: str
    qa_family: str | None
    qa_fact: str | None
    voice: str
    rate: int
    pitch: int
    speaker: str
    split: str


def _split_off(items: Sequence, fraction: float, rng: random.Random) -> tuple[list, list]:
    """Shuffle and cut: (train, heldout), with at least one of each when there are two items."""
    shuffled = list(items)
    rng.shuffle(shuffled)
    num_heldout = min(max(math.ceil(fraction * len(shuffled)), 1), len(shuffled) - 1)
    return shuffled[num_heldout:], shuffled[:num_heldout]


def evenly_spread(fraction: float, index: int) -> bool:
    """True for an evenly spread ``fraction`` of indices; every prefix keeps the proportion.

    >>> [i for i in range(10) if evenly_spread(0.3, i)]
    [3, 6, 9]
    """
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


def plan_corpus(
    num_utterances: int,
    seed: int,
    *,
    voices: Sequence[str] | None = None,
    heldout_fraction: float = 0.2,
    spoken_qa_fraction: float = 0.5,
    rate_range: tuple[int, int] = (130, 200),
    pitch_range: tuple[int, int] = (30, 70),
    num_sentences: int = 400,
) -> list[PlannedUtterance]:
    """Decide every utterance's text, task, voice, rate, pitch and split (no audio).

    Args:
        num_utterances: rows to plan.
        seed: everything below is a function of it; a plan for N rows is a prefix of the plan
            for more rows with the same seed and options.
        voices: voice pool (default :func:`pipeline.data.tts.list_voices`, 8 accents x 14).
        heldout_fraction: share of voices, of texts (sentences and QA facts, per family) and of
            rows that are held out. Held-out rows use held-out voices and held-out texts only.
        spoken_qa_fraction: share of rows (within each split) that are spoken questions.
        rate_range: speaking rate in words per minute, drawn uniformly per row (inclusive).
        pitch_range: eSpeak base pitch 0-100, drawn uniformly per row (inclusive).
        num_sentences: size of the transcription sentence pool (before the split).

    Texts are used round-robin in a seeded order, so they repeat only once a split's pool is
    used up; QA rows cycle through the families so each family gets an equal share.
    """
    if num_utterances < 0:
        raise ValueError("num_utterances must be >= 0")
    if not 0 < heldout_fraction < 1:
        raise ValueError("heldout_fraction must be between 0 and 1 (exclusive)")
    if not 0 <= spoken_qa_fraction <= 1:
        raise ValueError("spoken_qa_fraction must be within [0, 1]")
    voice_pool = sorted(set(voices if voices is not None else list_voices()))
    if len(voice_pool) < 2:
        raise ValueError("need at least two voices: one for train and one held out")

    split_rng = random.Random(f"aura-corpus-split:{seed}")
    train_voices, heldout_voices = _split_off(voice_pool, heldout_fraction, split_rng)
    voices_by_split = {"train": sorted(train_voices), "heldout": sorted(heldout_voices)}

    # Split texts within each family so that both splits cover every family.
    sentences_by_split: dict[str, list[str]] = {"train": [], "heldout": []}
    sentences = transcription_sentences(seed, num_sentences)
    for family in SENTENCE_TEMPLATES:
        members = [s for f, s in sentences if f == family]
        train, heldout = _split_off(members, heldout_fraction, split_rng)
        sentences_by_split["train"] += train
        sentences_by_split["heldout"] += heldout
    for split in SPLITS:
        split_rng.shuffle(sentences_by_split[split])

    facts_by_split: dict[str, dict[str, list[QAFact]]] = {"train": {}, "heldout": {}}
    for family, build in QA_FAMILIES.items():
        train, heldout = _split_off(build(), heldout_fraction, split_rng)
        facts_by_split["train"][family] = train
        facts_by_split["heldout"][family] = heldout
    qa_families = list(QA_FAMILIES)

    rows_seen = {"train": 0, "heldout": 0}
    used = {(split, task): 0 for split in SPLITS for task in TASKS}
    plan = []
    for index in range(num_utterances):
        row_rng = random.Random(f"aura-corpus-row:{seed}:{index}")
        split = "heldout" if evenly_spread(heldout_fraction, index) else "train"
        task = "spoken_qa" if evenly_spread(spoken_qa_fraction, rows_seen[split]) else "transcribe"
        rows_seen[split] += 1
        turn = used[split, task]
        used[split, task] += 1
        if task == "transcribe":
            pool = sentences_by_split[split]
            text = pool[turn % len(pool)]
            question = answer = family = fact_id = None
            target = text
        else:
            family = qa_families[turn % len(qa_families)]
            facts = facts_by_split[split][family]
            fact = facts[(turn // len(qa_families)) % len(facts)]
            text = question = row_rng.choice(fact.phrasings)
            answer = target = fact.answer
            fact_id = fact.fact_id
        voice = row_rng.choice(voices_by_split[split])
        key = f"espeak-s{seed}-{index:06d}"
        plan.append(PlannedUtterance(
            key=key, audio=f"audio/{key}.flac", text=text, task=task, question=question,
            answer=answer, target=target, qa_family=family, qa_fact=fact_id, voice=voice,
            rate=row_rng.randint(*rate_range), pitch=row_rng.randint(*pitch_range),
            speaker=f"espeak:{voice}", split=split))
    return plan


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
        # spawn, not fork: the parent may hold threads (tqdm, torch, ray) that fork would copy.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
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
    (out_dir / SUMMARY_NAME).write_text(json.dumps(asdict(summary), indent=2) + "\n")
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
