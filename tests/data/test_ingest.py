import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.config import IngestConfig
from pipeline.data.audio import load_checked, quantize_pcm16
from pipeline.data.ingest import ingest, make_key
from pipeline.data.shards import ShardFormatError, ShardSet, iter_shard_file
from pipeline.data.audio import speechlike

CFG = IngestConfig(samples_per_shard=3)


def _corpus(root, write_wav, n, start=0):
    for i in range(start, start + n):
        write_wav(root / f"spk{i % 2}" / f"utt{i:03d}.wav", seconds=0.5 + 0.1 * i, text=f"sentence {i}", seed=i)


def test_round_trip_samples_match(tmp_path, write_wav):
    src = tmp_path / "in"
    _corpus(src, write_wav, 4)
    summary = ingest(src, tmp_path / "shards", CFG, progress=False)
    assert summary.ingested == 4 and summary.new_shards == ["shard-000000", "shard-000001"]
    shards = ShardSet(tmp_path / "shards")
    rows = {r["key"]: r for r in shards.manifest_rows()}
    for name in shards.shard_names():
        for sample in shards.iter_shard(name):
            row = rows[sample.key]
            original = load_checked(row["source"], CFG).samples
            np.testing.assert_array_equal(sample.audio, quantize_pcm16(original))
            assert sample.sample_rate == 16000
            assert sample.meta["text"] == row["text"]
            assert row["shard"] == name
    assert set(rows) == {"spk0_utt000", "spk1_utt001", "spk0_utt002", "spk1_utt003"}
    assert rows["spk1_utt003"]["duration_s"] == pytest.approx(0.8)
    assert len(rows["spk0_utt000"]["sha256"]) == 64


def test_rerun_is_idempotent_and_new_input_goes_to_new_shards(tmp_path, write_wav):
    src = tmp_path / "in"
    _corpus(src, write_wav, 4)
    ingest(src, tmp_path / "shards", CFG, progress=False)
    shards = ShardSet(tmp_path / "shards")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "shards").glob("*.tar")}
    manifest_before = shards.manifest_path.read_bytes()

    again = ingest(src, tmp_path / "shards", CFG, progress=False)
    assert again.ingested == 0 and again.new_shards == [] and again.skipped_existing == 4
    assert shards.manifest_path.read_bytes() == manifest_before
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "shards").glob("*.tar")} == before

    _corpus(src, write_wav, 2, start=4)
    grown = ingest(src, tmp_path / "shards", CFG, progress=False)
    assert grown.ingested == 2 and grown.new_shards == ["shard-000002"]
    # Earlier shards untouched.
    for name, (mtime, data) in before.items():
        assert (tmp_path / "shards" / name).read_bytes() == data
    assert len(shards.manifest_rows()) == 6


def test_same_input_gives_byte_identical_shards(tmp_path, write_wav):
    src = tmp_path / "in"
    _corpus(src, write_wav, 4)
    ingest(src, tmp_path / "a", CFG, progress=False)
    ingest(src, tmp_path / "b", CFG, progress=False)
    for p in sorted((tmp_path / "a").glob("*.tar")):
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes()


def test_manifest_input_jsonl_and_parquet(tmp_path, write_wav):
    src = tmp_path / "in"
    for i in range(3):
        write_wav(src / "audio" / f"q{i}.wav", text=None, seed=i)
    rows = [
        {"audio": "audio/q0.wav", "text": "what is two plus two", "task": "spoken_qa", "question": "what is two plus two", "answer": "four", "voice": "en-us"},
        {"audio": "audio/q1.wav", "text": "hello", "key": "custom.key/1"},
        {"audio": "audio/missing.wav", "text": "gone"},
    ]
    (src / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    summary = ingest(src / "m.jsonl", tmp_path / "s1", CFG, progress=False)
    assert summary.ingested == 2
    reasons = sorted(r.reason for r in summary.rejects)
    assert reasons[0] == "file not found" and reasons[1].startswith("malformed JSONL")
    got = {r["key"]: r for r in ShardSet(tmp_path / "s1").manifest_rows()}
    assert got["audio_q0"]["task"] == "spoken_qa" and got["audio_q0"]["answer"] == "four"
    assert json.loads(got["audio_q0"]["meta"]) == {"voice": "en-us"}
    assert "custom_key_1" in got and got["custom_key_1"]["task"] == "transcribe"

    pq.write_table(pa.Table.from_pylist(rows[:2]), src / "m.parquet")
    assert ingest(src / "m.parquet", tmp_path / "s2", CFG, progress=False).ingested == 2
    (src / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a readable parquet"):
        ingest(src / "broken.parquet", tmp_path / "s3", CFG, progress=False)


def test_odd_file_names_become_safe_keys(tmp_path, write_wav):
    src = tmp_path / "in"
    long_name = "x" * 200
    write_wav(src / f"{long_name}.wav", text="long name")
    weird = src.as_posix().encode() + b"/caf\xe9 . name.wav"  # not valid UTF-8
    import os
    os.makedirs(src, exist_ok=True)
    with open(weird, "wb") as f:
        sf.write(f, speechlike(0.5), 16000, format="WAV")
    with open(weird.replace(b".wav", b".txt"), "w") as f:
        f.write("weird name")
    summary = ingest(src, tmp_path / "shards", CFG, progress=False)
    assert summary.ingested == 2, summary.describe()
    keys = [r["key"] for r in ShardSet(tmp_path / "shards").manifest_rows()]
    assert all(len(k) <= 120 and make_key(k) == k for k in keys)


def _tar_with(path, name, data=b"x"):
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.faults("ingest", "tar member with an absolute path, '..' or an unknown name")
@pytest.mark.parametrize("member", ["/etc/passwd.flac", "../evil.flac", "a/b.flac", "key.exe"])
def test_tar_member_names_are_never_trusted(tmp_path, member):
    _tar_with(tmp_path / "shard-000000.tar", member)
    with pytest.raises(ShardFormatError, match="unexpected tar member"):
        list(iter_shard_file(tmp_path / "shard-000000.tar"))
    assert not (tmp_path / "evil.flac").exists()
