"""The unseen-voice dev set: dev rows only, spoken by new voices, ingested; training and held-out voices refused."""

import json

import pytest

from benchmarks import unseen_voice_dev
from pipeline.data.shards import MANIFEST_SCHEMA, ShardSet


def _corpus(tmp_path):
    config = tmp_path / "aura.yaml"
    config.write_text(f"workdir: {tmp_path}\ncorpus:\n  builder: multi-engine\n  voices:\n    pico:en-US: 1.0\n")
    rows = []
    for i, split in enumerate(["train", "dev", "heldout", "dev"]):
        text = f"The {['first', 'second', 'third', 'fourth'][i]} sentence is spoken here."
        rows.append({"key": f"sc0-{i:07d}", "audio": f"audio/00000/sc0-{i:07d}.flac", "text": text,
                     "task": "transcribe", "question": None, "answer": None, "target": text, "qa_family": None,
                     "qa_fact": None, "voice": "pico:en-US", "speaker": "pico:en-US", "split": split,
                     "engine": "pico", "speed": 1.1, "pitch": 0.9, "augment": "clean",
                     "augment_params": json.dumps({"gain_db": 0.0, "noise_snr_db": None, "reverb_room": None,
                                                   "telephone": False, "seed": i}),
                     "sample_rate": 16000, "num_samples": 16000, "duration": 1.0})
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return config


def test_the_dev_rows_are_spoken_again_by_the_new_voices_and_ingested(tmp_path):
    config = _corpus(tmp_path)
    out = tmp_path / "unseen"
    with pytest.raises(SystemExit, match="pico:en-US is a training voice"):
        unseen_voice_dev.main(["--config", str(config), "--out", str(out), "--voices", "pico:en-US"])
    with pytest.raises(SystemExit, match="pico:en-GB is a held-out voice"):
        unseen_voice_dev.main(["--config", str(config), "--out", str(out), "--voices", "pico:en-GB"])

    unseen_voice_dev.main(["--config", str(config), "--out", str(out), "--voices", "espeak:en-gb-scotland",
                           "--workers", "1"])
    rows = ShardSet(out / "shards").read_manifest().to_pylist()
    assert sorted(r["key"] for r in rows) == ["sc0-0000001-uv", "sc0-0000003-uv"]  # the dev rows, nothing else
    assert {r["speaker"] for r in rows} == {"espeak:en-gb-scotland"} and {r["split"] for r in rows} == {"dev"}
    assert [r["text"] for r in sorted(rows, key=lambda r: r["key"])] == [
        "The second sentence is spoken here.", "The fourth sentence is spoken here."]


def test_a_voice_the_engine_lacks_is_refused_before_anything_is_rendered(tmp_path):
    config = _corpus(tmp_path)
    with pytest.raises(SystemExit, match="espeak has no voice 'no-such-accent'"):
        unseen_voice_dev.main(["--config", str(config), "--out", str(tmp_path / "out"), "--voices",
                               "espeak:no-such-accent"])
    assert not (tmp_path / "out").exists()


def test_a_voice_of_a_training_row_in_the_workdir_shards_is_refused_though_the_config_lacks_it(tmp_path):
    # The trainer reads every committed shard of the workdir: a corpus grown there by another config trains on
    # voices this config does not name, and a set in those voices would not be unseen.
    import pyarrow as pa

    config = _corpus(tmp_path)
    row = {name: None for name in MANIFEST_SCHEMA.names} | {
        "key": "sc0-0024000", "shard": "shard-000000", "index": 0, "split": "train", "speaker": "kokoro:jm_kumo"}
    ShardSet(tmp_path / "shards").write_manifest(pa.Table.from_pylist([row], schema=MANIFEST_SCHEMA))
    with pytest.raises(SystemExit, match="kokoro:jm_kumo is a training voice"):
        unseen_voice_dev.main(["--config", str(config), "--out", str(tmp_path / "out"), "--voices",
                               "kokoro:jm_kumo,kokoro:jf_alpha"])
    assert not (tmp_path / "out").exists()
