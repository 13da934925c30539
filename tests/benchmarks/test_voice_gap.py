"""The voice-gap diagnostics: dev texts only, pairs of renderings that differ in one thing, accents that are spoken."""

import json

import pytest

from benchmarks import shift_search, voice_gap


def test_only_distinct_dev_transcription_texts_are_spoken(tmp_path):
    rows = [("A dev text.", "dev", "transcribe"), ("A dev text.", "dev", "transcribe"), ("Another.", "dev", "transcribe"),
            ("A dev question?", "dev", "spoken_qa"), ("Held out.", "heldout", "transcribe"), ("Trained.", "train", "transcribe")]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"text": t, "split": s, "task": k}) + "\n" for t, s, k in rows))
    texts = voice_gap.dev_texts(str(manifest), 10)
    assert sorted(texts) == ["A dev text.", "Another."]
    assert voice_gap.dev_texts(str(manifest), 10) == texts  # the same draw every run
    assert len(voice_gap.dev_texts(str(manifest), 1)) == 1


def test_each_pair_differs_in_the_one_thing_it_names():
    renderings = {name: (engine, voice, accent) for name, engine, voice, accent in voice_gap.RENDERINGS}
    for a, b, what in voice_gap.PAIRS:
        (engine_a, voice_a, accent_a), (engine_b, voice_b, accent_b) = renderings[a], renderings[b]
        assert engine_a == engine_b
        if what.startswith("accent"):
            assert voice_a == voice_b and accent_a != accent_b
        else:
            assert voice_a != voice_b
    assert shift_search.floats("0.9,1,1.1") == [0.9, 1.0, 1.1]


def test_the_accented_engines_speak_british_phonemes():
    british = voice_gap.engine_for("kokoro", "en-gb")
    assert "ɹ" not in british.phonemes("car") and "ɹ" in voice_gap.engine_for("kokoro", "en-us").phonemes("car")
    assert voice_gap.engine_for("pico", None).voices() == ("en-GB", "en-US")
    with pytest.raises(KeyError):
        voice_gap.engine_for("espeak", "en-gb")  # eSpeak's accents are its voices, not an option


def test_the_agreed_transcript_is_the_one_nearest_all_others():
    # the majority reading wins over a longer one that contains it and over an outlier, empty readings included
    assert shift_search.agreed_transcript(["a cat sat", "the cat sat", "the cat sat", "dog ran off now"]) == 1
    assert shift_search.agreed_transcript(["", "", "the cat"]) == 0
    assert shift_search.agreed_transcript(["the cat", "", "the cat"]) == 0
