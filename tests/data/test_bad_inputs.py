"""The bad-input corpus: every kind of broken or unusual input, generated here, through one ingest.

Each case is a trial of the fault suite: it must either be converted correctly (16 kHz mono,
same duration, same signal) or be rejected with a reason that names the file, while the rest of
the job goes on. Job-level inputs (a malformed parquet manifest, a missing input) fail the whole
call clearly instead.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.config import IngestConfig
from pipeline.data.audio import resample, to_flac_bytes
from pipeline.data.ingest import ingest, make_key
from pipeline.data.shards import ShardSet
from pipeline.data.audio import speechlike

CFG = IngestConfig(samples_per_shard=4)
LONG_NAME = "x" * 240  # + ".wav": near the 255-byte limit of a file name
NON_UTF8_NAME = b"caf\xe9-latin1"  # a Latin-1 byte: not valid UTF-8


def _wav_bytes(audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _speech(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return speechlike(seconds, rate=rate, seed=seed)


# name -> (file name, bytes); every one gets a transcript sidecar unless named in NO_SIDECAR.
REJECTED = {  # case -> (file, content, reason fragment)
    "truncated FLAC": ("cut-flac.flac", to_flac_bytes(_speech(2.0, 16000), 16000)[:9000], "not readable as audio"),
    "truncated WAV": ("cut-wav.wav", _wav_bytes(_speech(2.0, 16000), 16000)[:30000], "truncated: the WAV header declares"),
    "zero-length file": ("empty.wav", b"", "empty file"),
    "header-only WAV": ("header.wav", _wav_bytes(np.zeros(0, np.float32), 16000), "no audio samples (header only)"),
    "random bytes named .wav": ("noise.wav", np.random.default_rng(1).bytes(5000), "not readable as audio"),
    "NaN samples": ("nan.wav", _wav_bytes(np.where(np.arange(16000) == 500, np.nan, _speech(1.0, 16000)),
                                          16000, "FLOAT"), "NaN or Inf"),
    "Inf samples": ("inf.wav", _wav_bytes(np.where(np.arange(16000) == 9, np.inf, _speech(1.0, 16000)),
                                          16000, "FLOAT"), "NaN or Inf"),
    "longer than 30 s": ("long.wav", _wav_bytes(_speech(31.0, 16000), 16000), "too long"),
    "six channels": ("six.wav", _wav_bytes(np.stack([_speech(0.5, 16000)] * 6, 1), 16000), "6 channels"),
    "silence": ("silent.wav", _wav_bytes(np.zeros(16000, np.float32), 16000), "silent"),
    "missing transcript": ("notext.wav", _wav_bytes(_speech(1.0, 16000), 16000), "transcript missing"),
    "duplicate key": ("dup.wav", _wav_bytes(_speech(1.0, 16000, seed=5), 16000), "duplicate key"),
}
NO_SIDECAR = {"notext.wav"}
CONVERTED = {  # case -> (file, rate, subtype, channels)
    "8-bit WAV": ("u8.wav", 16000, "PCM_U8", 1),
    "24-bit WAV": ("s24.wav", 16000, "PCM_24", 1),
    "float WAV": ("f32.wav", 16000, "FLOAT", 1),
    "8 kHz": ("rate8k.wav", 8000, "PCM_16", 1),
    "44.1 kHz": ("rate44k.wav", 44100, "PCM_16", 1),
    "48 kHz": ("rate48k.wav", 48000, "PCM_16", 1),
    "stereo": ("stereo.wav", 16000, "PCM_16", 2),
}
MANIFEST_REJECTED = {  # case -> (JSONL line, reason fragment)
    "manifest row pointing at a missing file": ('{"audio": "gone.wav", "text": "x"}', "file not found"),
    "malformed JSONL line": ('{"audio": "oops.wav", ', "malformed JSONL line"),
    "JSONL row without an audio path": ('{"text": "no audio here"}', "row has no 'audio' path"),
    "non-UTF-8 JSONL line": (b'{"audio": "caf\xe9.wav"}', "malformed JSONL line"),
}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-inputs")
    src = root / "in"
    src.mkdir()
    for name, data, _ in REJECTED.values():
        (src / name).write_bytes(data)
        if name not in NO_SIDECAR:
            (src / name).with_suffix(".txt").write_text("a transcript")
    (src / "dup.flac").write_bytes(to_flac_bytes(_speech(1.0, 16000, seed=6), 16000))  # the same key "dup"
    (src / "dup.txt").write_text("the first of two files with the key dup")
    (src / "badtext.wav").write_bytes(_wav_bytes(_speech(1.0, 16000), 16000))
    (src / "badtext.txt").write_bytes(b"caf\xe9")
    originals = {}
    for case, (name, rate, subtype, channels) in CONVERTED.items():
        audio = _speech(1.5, rate, seed=len(originals))
        originals[case] = audio
        sf.write(src / name, np.stack([audio, audio], 1) if channels == 2 else audio, rate, subtype=subtype)
        (src / name).with_suffix(".txt").write_text(case)
    for raw in (os.fsencode(src) + b"/" + NON_UTF8_NAME, os.fsencode(src / LONG_NAME)):
        with open(raw + b".wav", "wb") as f:
            f.write(_wav_bytes(_speech(1.0, 16000), 16000))
        with open(raw + b".txt", "wb") as f:
            f.write(b"an odd file name")
    dir_summary = ingest(src, root / "shards", CFG, progress=False)

    manifest = root / "manifest.jsonl"
    (root / "ok.wav").write_bytes(_wav_bytes(_speech(1.0, 16000), 16000))
    lines = [b'{"audio": "ok.wav", "text": "fine", "key": "manifest-ok"}']
    lines += [line if isinstance(line, bytes) else line.encode() for line, _ in MANIFEST_REJECTED.values()]
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    manifest_summary = ingest(manifest, root / "shards-from-manifest", CFG, progress=False)
    return root, dir_summary, manifest_summary, originals


def test_the_rest_of_the_job_goes_on(ingested):
    root, summary, _, _ = ingested
    # 7 converted, the first "dup" file, two odd names; everything else is in the rejects report.
    assert summary.ingested == len(CONVERTED) + 1 + 2
    assert summary.rejected == len(REJECTED) + 1
    assert len((root / "shards" / "rejects.jsonl").read_text().splitlines()) == summary.rejected


def _reason(summary, file_fragment: str) -> str:
    found = [r.reason for r in summary.rejects if file_fragment in r.file]
    assert len(found) == 1, (file_fragment, [(r.file, r.reason) for r in summary.rejects])
    return found[0]


@pytest.mark.faults("ingest", "bad input rejected with a reason")
@pytest.mark.parametrize("case", list(REJECTED) + ["non-UTF-8 transcript"])
def test_bad_file_is_rejected_naming_file_and_reason(case, ingested):
    root, summary, _, _ = ingested
    name, reason = ("badtext.wav", "transcript is not UTF-8") if case == "non-UTF-8 transcript" else \
        (REJECTED[case][0], REJECTED[case][2])
    assert reason in _reason(summary, f"/{name}")
    report = [json.loads(line) for line in (root / "shards" / "rejects.jsonl").read_text().splitlines()]
    assert any(r["file"].endswith(f"/{name}") and reason in r["reason"] for r in report)


@pytest.mark.faults("ingest", "bad manifest row rejected with a reason")
@pytest.mark.parametrize("case", list(MANIFEST_REJECTED))
def test_bad_manifest_row_is_rejected_and_the_rest_ingested(case, ingested):
    root, _, summary, _ = ingested
    reason = MANIFEST_REJECTED[case][1]
    assert any(reason in r.reason and "manifest.jsonl" in r.file or reason == "file not found" and
               r.file.endswith("gone.wav") for r in summary.rejects), [(r.file, r.reason) for r in summary.rejects]
    assert summary.ingested == 1 and summary.rejected == len(MANIFEST_REJECTED)


@pytest.mark.faults("ingest", "unusual audio converted to 16 kHz mono")
@pytest.mark.parametrize("case", list(CONVERTED))
def test_unusual_audio_is_converted_correctly(case, ingested):
    root, _, _, originals = ingested
    name, rate, _, _ = CONVERTED[case]
    shards = ShardSet(root / "shards")
    row = next(r for r in shards.manifest_rows() if r["key"] == make_key(Path(name).stem))
    sample = next(s for s in shards.iter_shard(row["shard"]) if s.key == row["key"])
    expected = resample(originals[case], rate, 16000)
    assert sample.audio.ndim == 1 and abs(len(sample.audio) - len(expected)) <= 1
    n = min(len(sample.audio), len(expected))
    correlation = np.corrcoef(sample.audio[:n], expected[:n])[0, 1]
    assert correlation > 0.99, f"{case}: the converted audio is not the input signal (r={correlation:.3f})"
    assert abs(row["duration_s"] - 1.5) < 1e-3


@pytest.mark.faults("ingest", "odd file name (non-UTF-8, 240 characters) gets a safe key")
@pytest.mark.parametrize("case", ["non-UTF-8", "very long"])
def test_odd_file_names_are_ingested_under_safe_keys(case, ingested):
    root, summary, _, _ = ingested
    rows = ShardSet(root / "shards").manifest_rows()
    keys = [r["key"] for r in rows]
    if case == "non-UTF-8":
        key = make_key(os.fsdecode(NON_UTF8_NAME))
    else:
        key = make_key(LONG_NAME)
        assert len(key) <= len(LONG_NAME)
    assert key in keys and all(c.isalnum() or c in "_-" for c in key)
    json.dumps(rows)  # every manifest string is valid UTF-8


@pytest.mark.faults("ingest", "job-level bad input (unreadable parquet, missing source) fails clearly")
@pytest.mark.parametrize("case", ["malformed parquet manifest", "missing input path"])
def test_job_level_bad_input_fails_clearly(case, tmp_path):
    if case == "malformed parquet manifest":
        source = tmp_path / "rows.parquet"
        source.write_bytes(b"PAR1 this is not parquet")
        with pytest.raises(ValueError, match="not a readable parquet manifest"):
            ingest(source, tmp_path / "shards", CFG, progress=False)
    else:
        with pytest.raises(FileNotFoundError, match="ingest input not found"):
            ingest(tmp_path / "nowhere", tmp_path / "shards", CFG, progress=False)
    assert not (tmp_path / "shards" / "manifest.parquet").exists()  # nothing half-written
