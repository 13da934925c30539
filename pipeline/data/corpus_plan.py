"""Planning the tiny eSpeak corpus from its seed alone: who says what, in which split (text, task, voice,
rate, pitch), before any audio exists. Held-out rows use held-out voices and held-out texts (for QA,
held-out facts)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.data.manifest import TASKS, PlannedRow
from pipeline.data.qa import QA_FAMILIES, QAFact
from pipeline.data.templates import SENTENCE_TEMPLATES, transcription_sentences
from pipeline.data.tts import list_voices

SPLITS = ("train", "heldout")


@dataclass(frozen=True)
class PlannedUtterance(PlannedRow):
    """One eSpeak manifest row before its audio exists: a :class:`PlannedRow` with eSpeak's prosody."""

    rate: int  # words per minute
    pitch: int  # 0-99


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
