"""Real sentence sources (WordNet examples, fortunes) and their TTS normalisation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.data.sentences import (
    Sentence,
    SentenceSourceMissing,
    UnspeakableText,
    dedup_key,
    load_sentences,
    normalize_spoken,
    sentence_counts,
    word_types,
)


@pytest.mark.parametrize("raw, spoken", [
    ("I have 3 cats.", "I have three cats."),
    ("It was 1,250 miles away.", "It was one thousand, two hundred and fifty miles away."),
    ("She was born in 1984.", "She was born in nineteen eighty-four."),
    ("He came 2nd and she came 21st.", "He came second and she came twenty-first."),
    ("Pi is about 3.14.", "Pi is about three point one four."),
    ("It costs $5.", "It costs five dollars."),
    ("It costs $1.", "It costs one dollar."),
    ("It costs $2.50 now.", "It costs two dollars and fifty cents now."),
    ("They raised $5 million.", "They raised five million dollars."),
    ("Prices rose 10% this year.", "Prices rose ten percent this year."),
    ("Music of the 1960s.", "Music of the nineteen sixties."),
    ("Dr. Smith met Mr. Jones and Mrs. Brown.", "Doctor Smith met Mister Jones and Missus Brown."),
    ("We visited St. Paul on Baker St. today.", "We visited Saint Paul on Baker Street today."),
    ("Fruit, e.g. apples, etc.", "Fruit, for example, apples, et cetera."),
    ("Cats vs. dogs.", "Cats versus dogs."),
    ("Salt & pepper, 2 + 2.", "Salt and pepper, two plus two."),
    ("Meet me at 10:30.", "Meet me at ten thirty."),
    ("\u201cHello,\u201d she said \u2014 twice.", "Hello, she said, twice."),
    ("It\u2019s   fine -- really.", "It's fine, really."),
    ("Wait... what?!", "Wait, what?"),
])
def test_normalize_spoken_writes_everything_out(raw, spoken):
    assert normalize_spoken(raw) == spoken


@pytest.mark.parametrize("raw, reason", [
    ("Visit www.example.org today.", "url"),
    ("Mail me at joe@example.com now.", "url"),
    ("This (in brackets) is bad.", "brackets"),
    ("Call my_function now.", "underscore"),
    ("Caf\u00e9 au lait for everyone.", "non_ascii"),
    ("The version is 3.1.4 today.", "digits"),
    ("He lives in the U.K. now.", "abbreviation"),
    ("Use a * here and ^ there.", "symbols"),
    ("STOP SHOUTING AT ME.", "all_caps"),
    ("I just had a NOSE JOB!", "all_caps"),
    ("--", "empty"),
])
def test_normalize_spoken_rejects_what_tts_would_not_read_as_words(raw, reason):
    with pytest.raises(UnspeakableText) as info:
        normalize_spoken(raw)
    assert info.value.reason == reason


def test_dedup_key_and_word_types():
    assert dedup_key("It's late!") == dedup_key("its LATE") == "its late"
    assert dedup_key("well-known") == "well known"
    assert word_types("It's a dog, a dog!") == {"it's", "a", "dog"}


def _fake_sources(tmp_path: Path) -> tuple[Path, Path]:
    wordnet = tmp_path / "wordnet"
    wordnet.mkdir()
    header = "  1 This software and database is provided \"as is\" and nothing more here\n"
    (wordnet / "data.noun").write_text(header + (
        '00000001 03 n 01 dog 0 000 | a domesticated canid; "the dog barked all night"; '
        '"the dog barked all night!"; "dogs"\n'
        '00000002 03 n 01 cat 0 000 | a feline; "the cat sat on the mat by the door"; '
        '"she owned 3 cats in 1990"\n'))
    for pos in ("verb", "adj", "adv"):
        (wordnet / f"data.{pos}").write_text(header)
    fortunes = tmp_path / "fortunes"
    fortunes.mkdir()
    (fortunes / "wisdom").write_text(
        "The cat sat on the mat by the door.\n%\n"
        "A penny saved is a penny earned.  Spend it wisely, friend.\n\t\t-- Ben Franklin\n%\n"
        "1. first item\n2. second item\n%\n"
        "This sentence is far too long to keep because it goes on and on and on and on and "
        "on and on and on without any end in sight at all.\n%\n")
    (fortunes / "wisdom.dat").write_bytes(b"\x00\x01binary")
    return wordnet, fortunes


def test_load_sentences_normalises_dedups_and_filters_by_length(tmp_path):
    wordnet, fortunes = _fake_sources(tmp_path)
    sentences = load_sentences(wordnet_dir=wordnet, fortunes_dir=fortunes)
    assert sentences == [
        Sentence("The dog barked all night.", "wordnet", "wordnet:noun:00000001:0"),
        Sentence("The cat sat on the mat by the door.", "wordnet", "wordnet:noun:00000002:0"),
        Sentence("She owned three cats in nineteen ninety.", "wordnet", "wordnet:noun:00000002:1"),
        Sentence("A penny saved is a penny earned.", "fortunes", "fortunes:wisdom:1:0"),
        Sentence("Spend it wisely, friend.", "fortunes", "fortunes:wisdom:1:1"),
    ]
    assert load_sentences(wordnet_dir=wordnet, fortunes_dir=fortunes) == sentences  # stable
    assert [s.text for s in load_sentences(("wordnet",), min_words=6, max_words=7,
                                           wordnet_dir=wordnet, fortunes_dir=fortunes)] == [
        "She owned three cats in nineteen ninety."]
    counts = sentence_counts(wordnet_dir=wordnet, fortunes_dir=fortunes)
    assert counts["sources"]["wordnet"]["duplicates"] == 1       # "...night!" again
    assert counts["sources"]["wordnet"]["too_short"] == 1        # "dogs"
    assert counts["sources"]["fortunes"]["duplicates"] == 1      # the cat, already in wordnet
    assert counts["sources"]["fortunes"]["too_long"] == 1
    assert counts["sources"]["fortunes"]["rejects"] == {"layout": 1}  # the list
    assert counts["total"]["sentences"] == 5
    assert counts["total"]["word_types"] == len(set().union(*(word_types(s.text) for s in sentences)))


def test_missing_source_names_the_debian_package(tmp_path):
    with pytest.raises(SentenceSourceMissing, match=re.escape(
            "wordnet sentences need the Debian package wordnet-base (apt-get install "
            f"wordnet-base): {tmp_path / 'data.noun'} not found")):
        load_sentences(("wordnet",), wordnet_dir=tmp_path)
    with pytest.raises(SentenceSourceMissing, match=r"Debian package fortunes \(apt-get install fortunes\)"):
        load_sentences(("fortunes",), fortunes_dir=tmp_path / "nowhere")


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists()
                    or not Path("/usr/share/games/fortunes/fortunes").exists(),
                    reason="needs the Debian packages wordnet-base and fortunes")
def test_installed_sources_reach_the_corpus_target():
    sentences = load_sentences()
    counts = sentence_counts()
    assert counts["total"]["sentences"] == len(sentences) >= 15_000
    assert counts["total"]["word_types"] >= 10_000
    assert len({dedup_key(s.text) for s in sentences}) == len(sentences)
    assert all(4 <= len(s.text.split()) <= 25 for s in sentences)
    assert all(re.fullmatch(r"[A-Za-z .,?!'-]+", s.text) for s in sentences)
