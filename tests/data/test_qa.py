"""Spoken QA facts at scale: ids, answers in words, phrasings, the measured accuracy table."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.data import corpus, qa
from pipeline.data.qa import (
    ACCURACY_FILE,
    ALL_QA_FAMILIES,
    LARGE_QA_FAMILIES,
    QA_FAMILIES,
    answerable_families,
    qa_facts,
    sample_questions,
    spoken_number,
)


@pytest.fixture(scope="module")
def facts():
    return qa_facts()


def test_corpus_reexports_the_same_qa_objects():
    assert corpus.QA_FAMILIES is qa.QA_FAMILIES and corpus.QAFact is qa.QAFact
    assert corpus.spoken_qa_facts is qa.spoken_qa_facts
    assert list(QA_FAMILIES) == ["arithmetic", "capitals", "opposites", "colors", "letters",
                                 "weekdays"]
    assert not set(QA_FAMILIES) & set(LARGE_QA_FAMILIES)


def test_fact_ids_are_distinct_and_families_are_large(facts):
    assert len({f.fact_id for f in facts}) == len(facts) > 10_000
    sizes = {name: len(qa_facts([name])) for name in ALL_QA_FAMILIES}
    assert sizes["sums"] > 4000 and sizes["number_after"] == 999 and sizes["plurals"] > 500
    assert sizes["world_capitals"] > 100 and sizes["wordnet_opposites"] > 100
    assert all(f.family in ALL_QA_FAMILIES for f in facts)


def test_answers_are_short_words_and_phrasings_have_no_digits(facts):
    for f in facts:
        assert re.fullmatch(r"[A-Za-z' -]+", f.answer), f
        assert 1 <= len(f.answer.split()) <= 4, f
        assert len(f.phrasings) >= 2 and len(set(f.phrasings)) == len(f.phrasings), f
        for phrasing in f.phrasings:
            assert not re.search(r"\d", phrasing) and phrasing.endswith("?"), phrasing
            assert phrasing.isascii()


def test_answers_are_right():
    by_id = {f.fact_id: f for f in qa_facts()}
    assert by_id["sum:37:45"].answer == "eighty-two"
    assert by_id["difference:100:1"].answer == "ninety-nine"
    assert by_id["number_after:999"].answer == "one thousand"
    assert by_id["number_before:301"].answer == "three hundred"
    assert by_id["times_table:12:12"].answer == "one hundred forty-four"
    assert by_id["month_after:3:November"].answer == "February"
    assert by_id["letter_after:Y"].answer == "z"
    assert by_id["world_capital:Japan"].answer == "Tokyo"
    assert by_id["plural:child"].answer == "children"
    assert spoken_number(1001) == "one thousand one"


def test_sampling_is_seeded_and_per_family():
    asked = sample_questions(["months", "alphabet"], per_family=5, seed=3)
    assert asked == sample_questions(["months", "alphabet"], per_family=5, seed=3)
    assert [f.family for f, _ in asked] == ["months"] * 5 + ["alphabet"] * 5
    assert all(q in f.phrasings for f, q in asked)


def test_unknown_family_is_an_error():
    with pytest.raises(KeyError, match="unknown QA families"):
        qa_facts(["nope"])


def test_answerable_families_reads_the_committed_table(tmp_path):
    table = json.loads(ACCURACY_FILE.read_text())
    assert table["model"] == "bundled:smollm2-135m-instruct" and table["date"]
    assert set(table["families"]) == set(ALL_QA_FAMILIES)
    passing = answerable_families(0.5)
    assert passing == [n for n in ALL_QA_FAMILIES if table["families"][n]["accuracy"] >= 0.5]
    assert answerable_families(0.0) == list(ALL_QA_FAMILIES)
    fake = tmp_path / "acc.json"
    fake.write_text(json.dumps({"families": {"months": {"accuracy": 0.9}, "sums": {"accuracy": 0.1},
                                             "gone": {"accuracy": 1.0}}}))
    assert answerable_families(0.5, path=fake) == ["months"]


@pytest.mark.slow
def test_measure_family_accuracy_with_the_bundled_llm():
    table = qa.measure_family_accuracy(["months"], per_family=4)
    row = table["families"]["months"]
    assert row["n"] == 4 and 0.0 <= row["accuracy"] <= 1.0 and len(row["examples"]) == 3
