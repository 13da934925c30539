"""`aura infer-batch` end to end on a real local Ray with tiny random models: a job killed at a random
point and re-run answers every row exactly once, with the answers of an uninterrupted run; a lost
worker is replaced; bad rows get their error; ingested shards and a baseline system work too."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipeline.data.audio import speechlike
from tests.conftest import REPO, run_aura
from tests.test_infer import aura_cache, llm_dir, make_run  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

GOOD_CLIPS = 30
# Small parts and long answers (the random LLM rarely stops early) so that a kill lands mid-job.
PART = ["--set", "batch.part_size=2", "--set", "batch.batch_size=2", "--set", "eval.max_new_tokens=24"]


@pytest.fixture(scope="module")
def run_config(llm_dir, aura_cache, tmp_path_factory) -> Path:  # noqa: F811
    return make_run(llm_dir, aura_cache, tmp_path_factory.mktemp("batch-run"))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Thirty clips of different lengths, one empty file, one missing file and one broken line."""
    folder = tmp_path_factory.mktemp("clips")
    lines = []
    for i in range(GOOD_CLIPS):
        sf.write(folder / f"clip{i}.wav", speechlike(0.6 + 0.1 * ((i * 7) % GOOD_CLIPS), seed=i), 16000)
        lines.append(json.dumps({"audio": f"clip{i}.wav", "key": f"clip{i}"}))
    (folder / "empty.wav").write_bytes(b"")
    lines += [json.dumps({"audio": "empty.wav", "key": "empty"}), json.dumps({"audio": "gone.wav", "key": "gone"}),
              "{broken"]
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def infer_batch(run_config: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return ["infer-batch", str(source), "--config", str(run_config), "--out", str(out), *PART, *extra]


def results(out: Path) -> dict[str, dict]:
    table = pq.read_table(out / "results.parquet").to_pylist()
    keys = [r["key"] for r in table]
    assert len(keys) == len(set(keys)), "a row was written twice"
    return {r["key"]: r for r in table}


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_parts(out: Path, count: int, job: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(list((out / "parts").glob("part-*.parquet"))) < count:
        assert job.poll() is None, f"the job ended before writing {count} part(s):\n{job.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "no part file appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(run_config, manifest, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    done = run_aura(*infer_batch(run_config, manifest, out))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # 1: some rows failed
    assert f"infer-batch: {GOOD_CLIPS} answered, 3 failed of {GOOD_CLIPS + 3} requests" in done.stdout
    return results(out)


def test_bad_rows_get_their_error_and_the_rest_is_answered(uninterrupted):
    assert len(uninterrupted) == GOOD_CLIPS + 3
    errors = {k: r["error"] for k, r in uninterrupted.items() if r["error"]}
    assert set(errors) == {"empty", "gone", next(k for k in errors if "manifest.jsonl" in k)}
    assert "file not found" in errors["gone"]
    good = [r for r in uninterrupted.values() if not r["error"]]
    assert all(r["answer"] is not None and r["duration_s"] > 0 and r["latency_s"] > 0 for r in good)
    assert len({r["answer"] for r in good}) > 1  # the diverse tiny LLM does not answer everything alike


def test_a_job_killed_at_a_random_point_resumes_without_duplicates(run_config, manifest, uninterrupted, tmp_path):
    out = tmp_path / "out"
    parts = -(-(GOOD_CLIPS + 3) // 2)
    kill_after = random.Random(os.getpid()).randint(1, parts // 2)
    job = start(infer_batch(run_config, manifest, out))
    try:
        wait_for_parts(out, kill_after, job)
        time.sleep(random.Random(os.getpid() + 1).random() * 0.1)  # most likely mid-part
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    written = len(list((out / "parts").glob("part-*.parquet")))
    assert kill_after <= written < parts and not (out / "results.parquet").exists()

    done = run_aura(*infer_batch(run_config, manifest, out))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # An actor may finish the part in its hands before it notices that its driver is gone: that part
    # is then whole on disk and kept; no part is ever answered twice.
    assert written <= summary["parts_before"] < parts and summary["parts_answered"] == parts - summary["parts_before"]
    resumed = results(out)
    assert resumed.keys() == uninterrupted.keys()
    assert {k: (r["answer"], r["error"]) for k, r in resumed.items()} == \
        {k: (r["answer"], r["error"]) for k, r in uninterrupted.items()}
    assert not list(out.rglob(".*.tmp-*")), "a killed writer's temporary file was left behind"


def test_a_lost_worker_is_replaced_and_its_part_answered_again(run_config, manifest, uninterrupted, tmp_path):
    out = tmp_path / "out"
    job = start(infer_batch(run_config, manifest, out))
    try:
        wait_for_parts(out, 1, job)
        subprocess.run(["pkill", "-9", "-f", r"MapBatches\(PartAnswerer\)"], check=True)
        output, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 1, output[-3000:]
    assert "a worker was lost" in output
    assert {k: r["answer"] for k, r in results(out).items()} == {k: r["answer"] for k, r in uninterrupted.items()}
    assert json.loads((out / "summary.json").read_text())["parts_answered"] == -(-(GOOD_CLIPS + 3) // 2)


def test_ingested_shards_and_the_cascade(tiny_workdir, tmp_path):
    workdir, overrides = tiny_workdir
    out = tmp_path / "cascade"
    done = run_aura("infer-batch", str(workdir / "shards"), "--split", "heldout", "--system", "cascade",
                    "--out", str(out), *overrides, *PART)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answered = results(out)
    heldout = [r["key"] for r in pq.read_table(workdir / "shards" / "manifest.parquet").to_pylist()
               if r["split"] == "heldout"]
    assert sorted(answered) == sorted(heldout) and all(r["error"] is None for r in answered.values())
    again = run_aura("infer-batch", str(workdir / "shards"), "--split", "heldout", "--system", "cascade",
                     "--out", str(out), *overrides, *PART, "--set", "eval.max_new_tokens=7")
    assert again.returncode == 2 and "holds answers of another job" in again.stderr
