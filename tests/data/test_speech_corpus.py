"""The multi-engine corpus: split disjointness by text, fact and voice; growth; rejects; the voice check."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf

from pipeline.config import CorpusConfig, ModelsConfig
from pipeline.data import speech_corpus
from pipeline.data.qa import qa_facts
from pipeline.data.sentences import Sentence
from pipeline.data.speech_corpus import build_speech_corpus, plan_speech_corpus, shares_after_check

SHARES = {"pico:en-US": 0.6, "piper:joe": 0.3, "espeak:en-us": 0.1}
TEXTS = [f"The {w} sentence number {i} is spoken here." for i in range(3000) for w in ("first",)]


@pytest.fixture(scope="module")
def plan():
    cfg = CorpusConfig(builder="multi-engine", num_utterances=4000)
    return cfg, plan_speech_corpus(cfg, SHARES, sentences=TEXTS, qa_facts=qa_facts(["capitals", "world_capitals",
                                                                                  "opposites", "plurals"]))


def test_splits_are_disjoint_in_text_fact_and_voice(plan):
    cfg, rows = plan
    by_split = {s: [r for r in rows if r.split == s] for s in ("train", "dev", "heldout")}
    texts = {s: {r.text for r in v if r.task == "transcribe"} for s, v in by_split.items()}
    questions = {s: {r.qa_fact for r in v if r.task == "spoken_qa"} for s, v in by_split.items()}
    assert not texts["train"] & texts["heldout"] and not texts["train"] & texts["dev"] and not texts["dev"] & texts["heldout"]
    assert not questions["train"] & questions["heldout"] and not questions["train"] & questions["dev"]
    # the same question in two families ("capital of France") lands in one split only
    wording = {s: {r.text.lower() for r in v if r.task == "spoken_qa"} for s, v in by_split.items()}
    facts = {f.fact_id: f for f in qa_facts(["capitals", "world_capitals", "opposites", "plurals"])}
    first = {s: {facts[f].phrasings[0].lower() for f in questions[s]} for s in questions}
    assert not first["train"] & first["heldout"]
    assert {r.voice for r in by_split["heldout"]} == set(cfg.heldout_voices)
    assert not {r.voice for r in by_split["train"]} & set(cfg.heldout_voices)
    assert wording["heldout"]


def test_split_and_task_proportions(plan):
    cfg, rows = plan
    counts = Counter(r.split for r in rows)
    assert abs(counts["heldout"] - cfg.heldout_fraction * len(rows)) <= 1
    assert abs(counts["dev"] - cfg.dev_fraction * len(rows)) <= 2
    train = [r for r in rows if r.split == "train"]
    assert abs(sum(r.task == "spoken_qa" for r in train) / len(train) - cfg.spoken_qa_fraction) < 0.01
    heldout = [r for r in rows if r.split == "heldout"]
    assert abs(sum(r.task == "spoken_qa" for r in heldout) / len(heldout) - cfg.eval_spoken_qa_fraction) < 0.02
    voices = Counter(r.voice for r in train)
    for voice, share in SHARES.items():
        assert abs(voices[voice] / len(train) - share) < 0.03


def test_prosody_and_augmentation_within_ranges(plan):
    cfg, rows = plan
    assert all(cfg.speed_range[0] <= r.speed <= cfg.speed_range[1] for r in rows)
    assert all(r.pitch == 1.0 for r in rows if r.engine == "piper")
    assert all(cfg.pitch_range[0] <= r.pitch <= cfg.pitch_range[1] for r in rows if r.engine != "piper")
    clean = sum(r.augment == "clean" for r in rows) / len(rows)
    assert abs(clean - cfg.augment_clean) < 0.05


def test_growing_appends_rows_and_keeps_splits(plan):
    cfg, rows = plan
    more = plan_speech_corpus(cfg.model_copy(update={"num_utterances": 4400}), SHARES, sentences=TEXTS,
                              qa_facts=qa_facts(["capitals", "world_capitals", "opposites", "plurals"]))
    assert more[:4000] == rows and len(more) == 4400
    # more sentences do not move any existing sentence to another split
    wider = plan_speech_corpus(cfg, SHARES, sentences=TEXTS + [f"Another new line {i} here." for i in range(50)],
                               qa_facts=[])
    split_of = {r.text: r.split for r in rows if r.task == "transcribe"}
    assert all(split_of.get(r.text, r.split) == r.split for r in wider)


def test_poor_voices_capped_and_hopeless_dropped():
    cfg = CorpusConfig(poor_voice_wer=0.2, max_poor_voice_share=0.18, drop_voice_wer=0.6)
    shares, dropped = shares_after_check({"good": 0.5, "ok": 0.2, "poor1": 0.15, "poor2": 0.15},
                                         {"good": 0.05, "ok": 0.15, "poor1": 0.3, "poor2": 0.45}, cfg)
    assert abs(sum(shares.values()) - 1) < 1e-5
    assert abs(shares["poor1"] + shares["poor2"] - 0.18) < 1e-5
    assert shares["good"] / shares["ok"] == pytest.approx(2.5, rel=1e-4)  # shares are rounded to 6 places
    assert not dropped
    _, dropped = shares_after_check({"good": 0.5, "bad": 0.5}, {"good": 0.05, "bad": 0.9}, cfg)
    assert dropped == {"bad": "Whisper WER 90.0 % > 60 %"}


def test_no_training_voice_fails_clearly():
    with pytest.raises(ValueError, match="no training voice left"):
        plan_speech_corpus(CorpusConfig(num_utterances=5), {}, sentences=TEXTS, qa_facts=[])


@pytest.mark.slow
def test_build_grow_and_reject(tmp_path, monkeypatch, model_cache_dir, capsys):
    """A real build (every engine, the bundled Whisper), grown by one part; a text no engine can speak is
    rejected with its file, key and reason; a missing engine is left out by the voice check; Whisper's passes show
    progress."""
    sentences = [Sentence(f"Station {w} is closed on weekends and holidays.", "test", str(i))
                 for i, w in enumerate(["north", "south", "east", "west", "central", "harbour", "airport", "market",
                                        "castle", "bridge", "garden", "museum", "river", "forest", "valley", "park"] * 3)]
    sentences = list({s.text: s for s in sentences}.values()) + [Sentence(" ", "test", "blank")]
    monkeypatch.setattr("pipeline.data.sentences.load_sentences", lambda **kw: sentences)
    cfg = CorpusConfig(builder="multi-engine", num_utterances=24, part_size=12, workers=2, voice_check_utterances=2,
                       wer_sample_per_voice=2, heldout_text_fraction=0.2, dev_text_fraction=0.1,
                       heldout_fraction=0.2, dev_fraction=0.1,
                       voices={"pico:en-US": 0.4, "piper:joe": 0.3, "festival:ked": 0.2, "espeak:en-us": 0.1,
                               "nosuch:voice": 0.1},
                       drop_voice_wer=5.0, poor_voice_wer=5.0)
    models = ModelsConfig(cache_dir=model_cache_dir)
    manifest = build_speech_corpus(tmp_path, cfg, models, progress=True)
    shown = capsys.readouterr().err
    assert "voice check: Whisper (bundled:whisper-tiny.en) transcribes: 100%" in shown and "10/10 [" in shown
    assert "summary: Whisper (bundled:whisper-tiny.en) transcribes rendered clips: 100%" in shown
    check = json.loads((tmp_path / "voice_check.json").read_text())
    assert "nosuch:voice" in check["dropped"] and "unknown TTS engine 'nosuch'" in check["dropped"]["nosuch:voice"]
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rejects = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert len(rows) + len(rejects) == 24
    for reject in rejects:
        assert reject["text"].strip() == "" and reject["key"] and reject["file"].endswith(".flac") and reject["reason"]
    for row in rows:
        audio, rate = sf.read(tmp_path / row["audio"])
        assert rate == 16000 and len(audio) == row["num_samples"] > 8000
    first_mtimes = {r["key"]: (tmp_path / r["audio"]).stat().st_mtime_ns for r in rows}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sum(summary["utterances"].values()) == len(rows) and summary["utterances"]["heldout"] >= 3
    assert (tmp_path / "summary.md").is_file() and (tmp_path / "summary.png").stat().st_size > 10_000

    grown = build_speech_corpus(tmp_path, cfg.model_copy(update={"num_utterances": 36}), models, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["build"]["rendered_parts"] == 1 and summary["build"]["reused_parts"] == 2
    grown_rows = [json.loads(line) for line in grown.read_text().splitlines()]
    assert grown_rows[:len(rows)] == rows
    assert all((tmp_path / r["audio"]).stat().st_mtime_ns == first_mtimes[r["key"]] for r in rows)


def test_cached_voice_check_follows_the_config(tmp_path):
    """The WER measurement is cached; shares and drops follow the thresholds of the config in force."""
    voices = {"pico:en-US": 0.5, "espeak:en-us": 0.3, "nosuch:voice": 0.2}
    (tmp_path / "voice_check.json").write_text(json.dumps({
        "whisper": "bundled:whisper-tiny.en", "utterances_per_voice": 4,
        "wer": {"pico:en-US": 0.1, "espeak:en-us": 0.4, "nosuch:voice": None, "pico:en-GB": 0.1},
        "shares": {}, "dropped": {"nosuch:voice": "unknown TTS engine 'nosuch'"}}))
    models = ModelsConfig()
    loose = speech_corpus.run_voice_check(CorpusConfig(voices=voices, max_poor_voice_share=0.5), models, [], tmp_path)
    assert loose.shares == {"pico:en-US": 0.625, "espeak:en-us": 0.375}
    assert loose.dropped == {"nosuch:voice": "unknown TTS engine 'nosuch'"}
    strict = speech_corpus.run_voice_check(CorpusConfig(voices=voices, drop_voice_wer=0.3), models, [], tmp_path)
    assert strict.shares == {"pico:en-US": 1.0} and "espeak:en-us" in strict.dropped


def test_voice_growth_keeps_earlier_rows_and_voices_the_new_ones(plan):
    cfg, rows = plan
    kokoro = {"kokoro:jf_alpha": 0.5, "kokoro:jm_kumo": 0.5}
    grown_cfg = CorpusConfig.model_validate({**cfg.model_dump(), "num_utterances": 4400, "voice_growth": [
        {"from_utterance": 4000, "voices": kokoro}]})
    grown = plan_speech_corpus(grown_cfg, SHARES, growth_shares=[kokoro], sentences=TEXTS,
                               qa_facts=qa_facts(["capitals", "world_capitals", "opposites", "plurals"]))
    assert grown[:4000] == rows
    new = grown[4000:]
    assert {r.voice for r in new if r.split != "heldout"} == set(kokoro)
    assert {r.voice for r in new if r.split == "heldout"} == set(cfg.heldout_voices)
    assert all(r.pitch == 1.0 for r in new if r.engine == "kokoro")
    with pytest.raises(ValueError, match="1 corpus.voice_growth entries but 0 growth_shares"):
        plan_speech_corpus(grown_cfg, SHARES, sentences=TEXTS, qa_facts=[])


def test_voice_growth_config_is_checked():
    with pytest.raises(ValueError, match="from_utterance must increase"):
        CorpusConfig(voice_growth=[{"from_utterance": 200, "voices": {"pico:en-US": 1}},
                                   {"from_utterance": 100, "voices": {"piper:joe": 1}}])
    with pytest.raises(ValueError, match="pico:en-GB both trained on and held out"):
        CorpusConfig(voice_growth=[{"from_utterance": 100, "voices": {"pico:en-GB": 1}}])


def test_voice_check_measures_only_the_voices_added(tmp_path):
    """Growing the voice list keeps the measured WERs (so planned rows keep their voices) and measures the new."""
    (tmp_path / "voice_check.json").write_text(json.dumps({
        "whisper": "bundled:whisper-tiny.en", "utterances_per_voice": 4,
        "wer": {"pico:en-US": 0.1, "espeak:en-us": 0.4, "pico:en-GB": 0.1},
        "shares": {}, "dropped": {}}))
    cfg = CorpusConfig(voices={"pico:en-US": 0.5, "espeak:en-us": 0.5}, max_poor_voice_share=0.5, voice_growth=[
        {"from_utterance": 100, "voices": {"pico:en-US": 0.5, "nosuch:voice": 0.5}}])
    check = speech_corpus.run_voice_check(cfg, ModelsConfig(), ["One two three four."], tmp_path)
    assert check.wer == {"espeak:en-us": 0.4, "nosuch:voice": None, "pico:en-GB": 0.1, "pico:en-US": 0.1}
    assert check.shares == {"pico:en-US": 0.5, "espeak:en-us": 0.5}
    assert check.growth_shares == [{"pico:en-US": 1.0}]
    assert "unknown TTS engine 'nosuch'" in check.dropped["nosuch:voice"]
    cached = json.loads((tmp_path / "voice_check.json").read_text())
    assert cached["growth_shares"] == [{"pico:en-US": 1.0}] and cached["wer"]["nosuch:voice"] is None


def test_voice_check_skips_voices_no_row_reaches(tmp_path):
    """A growth stage beyond num_utterances is neither measured nor planned; the cache keeps what it measured."""
    (tmp_path / "voice_check.json").write_text(json.dumps({
        "whisper": "bundled:whisper-tiny.en", "utterances_per_voice": 4,
        "wer": {"pico:en-US": 0.1, "espeak:en-us": 0.4, "pico:en-GB": 0.1, "piper:joe": 0.12},
        "shares": {}, "dropped": {}}))
    cfg = CorpusConfig(num_utterances=100, voices={"pico:en-US": 0.5, "espeak:en-us": 0.5}, max_poor_voice_share=0.5,
                       voice_growth=[{"from_utterance": 100, "voices": {"nosuch:voice": 1.0}}])
    check = speech_corpus.run_voice_check(cfg, ModelsConfig(), ["One two three four."], tmp_path)
    assert "nosuch:voice" not in check.wer and not check.dropped  # never synthesised: no engine was asked
    assert check.wer["piper:joe"] == 0.12 and check.growth_shares == [{}]
    rows = plan_speech_corpus(cfg, check.shares, growth_shares=check.growth_shares, sentences=TEXTS,
                              qa_facts=qa_facts(["capitals", "plurals"]))
    assert len(rows) == 100 and {r.voice for r in rows if r.split != "heldout"} <= set(check.shares)
