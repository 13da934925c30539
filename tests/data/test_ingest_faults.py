"""Fault injection on ingest: the job SIGKILLed at random points, then re-run.

The promise: the re-run ends with exactly the shards, manifest and rejects report of an
uninterrupted run (byte for byte), and no temporary file is left behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, fault_seeds, run_aura

pytestmark = pytest.mark.slow
NUM_FILES, PER_SHARD = 48, 4  # 12 shards


def _ingest_args(src: Path, workdir: Path) -> list[str]:
    return ["ingest", str(src), "--config", "configs/tiny.yaml", "--set", f"workdir={workdir}",
            "--set", f"ingest.samples_per_shard={PER_SHARD}", "--set", "ingest.workers=1"]


def _snapshot(shards: Path) -> dict:
    files = {p.name: p.read_bytes() for p in sorted(shards.iterdir()) if p.suffix == ".tar"}
    return {"files": sorted(p.name for p in shards.iterdir()), "tars": files,
            "manifest": pq.read_table(shards / "manifest.parquet").to_pylist(),
            "rejects": (shards / "rejects.jsonl").read_text()}


@pytest.fixture(scope="module")
def source_and_reference(tmp_path_factory):
    from pipeline.data.audio import speechlike
    import soundfile as sf

    root = tmp_path_factory.mktemp("ingest-faults")
    src = root / "in"
    src.mkdir()
    for i in range(NUM_FILES):
        sf.write(src / f"utt{i:03d}.wav", speechlike(1.0 + 0.05 * i, seed=i), 16000)
        (src / f"utt{i:03d}.txt").write_text(f"utterance number {i}")
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00")  # one reject, so the report is compared too
    (src / "broken.txt").write_text("x")
    done = run_aura(*_ingest_args(src, root / "reference"))
    assert done.returncode == 0, done.stderr[-3000:]
    return src, _snapshot(root / "reference" / "shards")


@pytest.mark.faults("ingest", "SIGKILL of the job at a random point, then re-run")
@pytest.mark.parametrize("seed", fault_seeds(in_ci=3))
def test_sigkill_at_a_random_point_then_rerun_equals_uninterrupted(seed, source_and_reference, tmp_path):
    src, reference = source_and_reference
    assert len(reference["tars"]) == NUM_FILES // PER_SHARD
    rng = random.Random(seed)
    kill_after_shards = rng.randrange(0, NUM_FILES // PER_SHARD - 1)  # 0 = while decoding, before any shard
    extra_delay_s = rng.uniform(0.0, 0.05)
    workdir = tmp_path / "killed"
    shards = workdir / "shards"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *_ingest_args(src, workdir)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            written = len(list(shards.glob("shard-*.tar"))) if shards.is_dir() else 0
            if written >= kill_after_shards and (kill_after_shards or shards.is_dir()):
                break
            time.sleep(0.005)
        time.sleep(extra_delay_s)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed"

    done = run_aura(*_ingest_args(src, workdir))
    assert done.returncode == 0, done.stderr[-3000:]
    after = _snapshot(shards)
    assert after["files"] == reference["files"], "leftover or missing files after the re-run"
    assert after["tars"] == reference["tars"]
    assert after["manifest"] == reference["manifest"]
    assert after["rejects"] == reference["rejects"]
