"""Synthetic corpus: planning (split disjointness, balance, answers) and generation."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.data.corpus import (
    MANIFEST_NAME,
    QA_FAMILIES,
    generate_corpus,
    load_manifest,
    number_to_words,
    read_summary,
    spoken_qa_facts,
)
from pipeline.data.corpus_plan import plan_corpus
from pipeline.data.templates import SENTENCE_TEMPLATES, transcription_sentences
from pipeline.data.tts import SAMPLE_RATE

MANIFEST_FIELDS = {"key", "audio", "text", "task", "question", "answer", "target", "qa_family",
                   "qa_fact", "voice", "rate", "pitch", "speaker", "split", "sample_rate",
                   "num_samples", "duration"}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> tuple[Path, float]:
    """A 12-utterance corpus and the seconds it took to generate."""
    out_dir = tmp_path_factory.mktemp("corpus")
    started = time.perf_counter()
    manifest = generate_corpus(out_dir, num_utterances=12, seed=3, progress=False)
    return manifest, time.perf_counter() - started


def test_heldout_split_shares_no_voice_and_no_text_with_train():
    plan = plan_corpus(num_utterances=3000, seed=11)
    train = [u for u in plan if u.split == "train"]
    heldout = [u for u in plan if u.split == "heldout"]
    assert len(heldout) == 600
    assert not {u.voice for u in train} & {u.voice for u in heldout}
    assert not {u.speaker for u in train} & {u.speaker for u in heldout}
    assert not {u.text for u in train} & {u.text for u in heldout}
    # QA facts, not just wordings, are held out: no phrasing of a held-out fact is trained
    assert not {u.qa_fact for u in train if u.qa_fact} & {u.qa_fact for u in heldout if u.qa_fact}
    for split in (train, heldout):
        assert {u.task for u in split} == {"transcribe", "spoken_qa"}
        assert {u.qa_family for u in split if u.task == "spoken_qa"} == set(QA_FAMILIES)


def test_plan_rows_are_well_formed_and_varied():
    plan = plan_corpus(num_utterances=500, seed=0)
    assert len({u.key for u in plan}) == 500
    assert all(130 <= u.rate <= 200 and 30 <= u.pitch <= 70 for u in plan)
    assert len({u.rate for u in plan}) > 40 and len({u.pitch for u in plan}) > 30
    assert len({u.voice for u in plan}) > 60
    assert sum(u.task == "spoken_qa" for u in plan) == 250
    for u in plan:
        assert u.audio == f"audio/{u.key}.flac" and u.speaker == f"espeak:{u.voice}"
        if u.task == "spoken_qa":
            assert u.question == u.text and u.answer == u.target and u.qa_family and u.qa_fact
        else:
            assert u.question is None and u.answer is None and u.qa_fact is None
            assert u.target == u.text


def test_plan_is_seeded_and_prefix_stable():
    assert plan_corpus(40, seed=5) == plan_corpus(40, seed=5)
    assert plan_corpus(60, seed=5)[:40] == plan_corpus(40, seed=5)
    assert plan_corpus(40, seed=5) != plan_corpus(40, seed=6)


def test_plan_options_are_respected():
    voices = ["en-us", "en-us+f1", "en+m2", "en-gb-x-rp+f4"]
    plan = plan_corpus(100, seed=1, voices=voices, heldout_fraction=0.5, spoken_qa_fraction=0.0,
                       rate_range=(140, 140), pitch_range=(55, 60))
    assert {u.voice for u in plan} <= set(voices)
    assert sum(u.split == "heldout" for u in plan) == 50
    assert all(u.task == "transcribe" and u.rate == 140 and 55 <= u.pitch <= 60 for u in plan)
    with pytest.raises(ValueError):
        plan_corpus(10, seed=1, voices=["en-us"])


def test_sentences_are_distinct_spoken_words_from_every_family():
    sentences = transcription_sentences(seed=0, count=400)
    texts = [s for _, s in sentences]
    assert len(set(texts)) == 400
    assert {f for f, _ in sentences} == set(SENTENCE_TEMPLATES)
    for text in texts:
        assert not re.search(r"\d", text), text  # numbers are words: the text is what is said
        assert text[0].isupper() and text[-1] in ".?", text
        assert "  " not in text and " ," not in text
    assert transcription_sentences(seed=1, count=50) != transcription_sentences(seed=0, count=50)


def test_qa_facts_have_correct_answers():
    facts = spoken_qa_facts()
    assert len({f.fact_id for f in facts}) == len(facts)
    assert len({p for f in facts for p in f.phrasings}) == sum(len(f.phrasings) for f in facts)
    by_question = {p: f.answer for f in facts for p in f.phrasings}
    assert by_question["What is two plus three?"] == "five"
    assert by_question["What color is the sky?"] == "blue"
    assert by_question["What is the capital of France?"] == "Paris"
    assert by_question["What is the opposite of hot?"] == "cold"
    assert by_question["What day comes after Sunday?"] == "Monday"
    assert by_question["What day is three days after Friday?"] == "Monday"
    assert by_question["What is seven minus seven?"] == "zero"
    assert by_question["What is six times six?"] == "thirty-six"
    words = {number_to_words(n): n for n in range(100)}
    for fact in facts:
        if fact.family == "letters":
            word = fact.phrasings[0].rsplit(" ", 1)[-1].rstrip("?")
            assert words[fact.answer] == len(word)
    counts = {family: sum(f.family == family for f in facts) for family in QA_FAMILIES}
    assert min(counts.values()) >= 20


def test_number_to_words():
    assert [number_to_words(n) for n in (0, 7, 13, 20, 42, 99)] == [
        "zero", "seven", "thirteen", "twenty", "forty-two", "ninety-nine"]
    with pytest.raises(ValueError):
        number_to_words(100)


def test_small_corpus_generates_quickly_with_complete_manifest(small_corpus):
    manifest, seconds = small_corpus
    assert seconds < 10  # ~0.3 s here; generous for a loaded machine
    assert manifest.name == MANIFEST_NAME
    rows = load_manifest(manifest)
    assert len(rows) == 12
    assert {r["split"] for r in rows} == {"train", "heldout"}
    for row in rows:
        assert set(row) == MANIFEST_FIELDS
        audio, rate = sf.read(manifest.parent / row["audio"], dtype="float32")
        info = sf.info(manifest.parent / row["audio"])
        assert info.format == "FLAC" and info.subtype == "PCM_16" and info.channels == 1
        assert rate == SAMPLE_RATE == row["sample_rate"]
        assert len(audio) == row["num_samples"]
        assert row["duration"] == pytest.approx(len(audio) / SAMPLE_RATE, abs=1e-3)
        assert np.sqrt(np.mean(audio**2)) > 0.02
        words = len(row["text"].split())
        assert 0.4 * words * 60 / row["rate"] < row["duration"] < 2.5 * words * 60 / row["rate"] + 1
    summary = read_summary(manifest.parent)
    assert summary.num_utterances == 12
    assert summary.audio_seconds == pytest.approx(sum(r["duration"] for r in rows), abs=0.01)
    assert summary.audio_seconds_per_wall_second > 1


def test_same_seed_gives_identical_manifest_and_audio_bytes_with_any_workers(small_corpus,
                                                                             tmp_path):
    manifest, _ = small_corpus
    again = generate_corpus(tmp_path / "again", num_utterances=12, seed=3, workers=2,
                            progress=False)
    assert again.read_bytes() == manifest.read_bytes()
    for row in load_manifest(manifest):
        original = (manifest.parent / row["audio"]).read_bytes()
        assert (again.parent / row["audio"]).read_bytes() == original
    other = generate_corpus(tmp_path / "other", num_utterances=12, seed=4, progress=False)
    assert other.read_bytes() != manifest.read_bytes()
    assert json.loads((tmp_path / "again" / "summary.json").read_text())["workers"] == 2
