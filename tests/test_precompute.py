"""`aura precompute` end to end: the Ray job, the teacher and the feature store together.

Two small espeak corpora, ingested into webdataset shards:

* REAL (bundled Whisper tiny.en, 8 utterances, 3 per shard): stored states equal the teacher run
  live on the same audio, within fp16 rounding, for every stored layer.
* RANDOM (random tiny Whisper, 2 utterances per shard, cheap to encode): incremental counts, a
  per-sample teacher failure, SIGKILL of a whole job then a re-run, fingerprint refusal and two
  jobs racing on one store.

Ray runs in this process (one local cluster for the module); the SIGKILL test starts its job in a
subprocess with its own local cluster, so that the whole job (driver, Ray and the writing actor)
can be killed at once.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from feature_store import FeatureStore, FingerprintMismatch, verify
from pipeline.config import AuraConfig, load_config
from pipeline.data.audio import to_flac_bytes
from pipeline.data.corpus import generate_corpus
from pipeline.data.ingest import IngestSummary, ingest
from pipeline.data.mel import teacher_frames
from pipeline.data.shards import MANIFEST_COLUMNS, ShardSet
from pipeline.precompute import PrecomputeSummary, run_precompute
from pipeline.store import open_store_for
from tests.conftest import fault_seeds

pytestmark = pytest.mark.slow  # Ray clusters and subprocess jobs

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
# Random tiny Whisper, layers [2, 4], fp16 (from tiny.yaml); 2 utterances per shard.
RANDOM_OVERRIDES = ["ingest.samples_per_shard=2", "precompute.num_workers=1", "precompute.batch_size=4"]
# Bundled Whisper tiny.en, layers [1, 2, 3, 4], fp16 (from demo.yaml); 3 utterances per shard.
REAL_OVERRIDES = ["ingest.samples_per_shard=3", "precompute.num_workers=1", "precompute.batch_size=4"]
TOO_LONG_KEY = "toolong-31s"
BESIDE_TOO_LONG_KEY = "okay-beside-toolong"
JOB_TIMEOUT_S = 300  # generous: the 2-core machine is shared


# ---------------------------------------------------------------------------------------------- helpers
def make_config(base: Path, workdir: Path, cache_dir: Path, *overrides: str) -> AuraConfig:
    return load_config(base, [f"workdir={workdir}", f"models.cache_dir={cache_dir}", *overrides])


def job_command(cfg: AuraConfig) -> list[str]:
    """``python -m jobs.precompute`` with ``--set`` arguments that give it the same config as ``cfg``
    (a RANDOM-corpus config)."""
    sets = [*RANDOM_OVERRIDES, f"workdir={cfg.workdir}", f"models.cache_dir={cfg.models.cache_dir}",
            f"paths.shards={cfg.paths.shards}", f"paths.store={cfg.paths.store}"]
    return [sys.executable, "-m", "jobs.precompute", "--config", str(TINY_CONFIG),
            *[arg for item in sets for arg in ("--set", item)]]


def first_rows_manifest(manifest: Path, count: int) -> Path:
    """A manifest beside ``manifest`` with its first ``count`` rows (audio paths stay valid)."""
    subset = manifest.with_name(f"manifest-first{count}.jsonl")
    subset.write_text("".join(manifest.read_text().splitlines(keepends=True)[:count]))
    return subset


def committed_marker_count(store_path: Path) -> int:
    return len(list(store_path.glob("shards/*/_COMMITTED.json")))


def session_processes(session_id: int) -> list[int]:
    """Live (non-zombie) processes in a session: a job started with start_new_session=True and its
    whole Ray cluster (Ray puts its workers in process groups of their own, not the job's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == session_id and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def kill_job_session(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGKILL the job's process group, then every process left in its session, and wait for them."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + timeout_s
    while (left := session_processes(proc.pid)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    assert not session_processes(proc.pid), "processes of the killed job survived SIGKILL"


def assert_same_store(store: FeatureStore, reference: FeatureStore) -> None:
    """Same committed shards, same keys in the same order, bit-identical states, same failures."""
    assert store.committed_shards() == reference.committed_shards()
    assert store.keys() == reference.keys()
    assert store.failures() == reference.failures()
    for shard, commit in reference.commits().items():
        other = store.commit_info(shard)
        assert (other.keys, other.lengths, other.failures) == (commit.keys, commit.lengths, commit.failures)
    for key in reference.keys():
        np.testing.assert_array_equal(store.read(key), reference.read(key), err_msg=key)


def add_shard_with_too_long_utterance(shards_dir: Path) -> str:
    """Append a shard holding a 31 s utterance (ingest refuses those, so write it directly) and a
    normal one, plus their manifest rows; returns the shard name."""
    shard_set = ShardSet(shards_dir)
    name = f"shard-{shard_set.next_shard_index():06d}"
    rng = np.random.default_rng(7)
    samples, rows = [], shard_set.manifest_rows()
    for index, (key, seconds) in enumerate([(TOO_LONG_KEY, 31.0), (BESIDE_TOO_LONG_KEY, 1.5)]):
        t = np.arange(int(seconds * 16000)) / 16000
        audio = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.02 * rng.standard_normal(len(t))).astype(np.float32)
        meta = {"key": key, "text": "a test tone", "duration_s": seconds, "num_samples": len(audio),
                "sample_rate": 16000, "source": f"{key}.wav", "split": "train", "task": "transcribe"}
        samples.append((key, to_flac_bytes(audio, 16000), meta))
        rows.append({**{c: None for c in MANIFEST_COLUMNS}, **meta, "shard": name, "index": index})
    shard_set.write_shard(name, samples)
    shard_set.write_manifest(pa.Table.from_pylist(rows))
    return name


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory) -> Path:
    """Converted models: $AURA_CACHE_DIR when set (reused across sessions), else a session temp dir."""
    if os.environ.get("AURA_CACHE_DIR"):
        return Path(os.environ["AURA_CACHE_DIR"]).expanduser()
    return tmp_path_factory.mktemp("aura-cache")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray cluster for this module's in-process runs.

    Started like :func:`pipeline.cluster.init_ray` but without the dashboard (only Ray Train needs
    it; the SIGKILL test's job still starts its cluster through ``init_ray``). Module-scoped, not
    session, so that later test modules start from a process without Ray.
    """
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 _node_ip_address="127.0.0.1")
    yield
    if started_here:
        ray.shutdown()


@dataclass
class RandomCorpus:
    workdir: Path
    manifest: Path  # the full corpus manifest (14 utterances)
    first_ingest: IngestSummary  # the first 10 utterances: shards 0-4
    too_long_shard: str  # shard 5, written directly


@pytest.fixture(scope="session")
def random_corpus(tmp_path_factory) -> RandomCorpus:
    workdir = tmp_path_factory.mktemp("precompute-random")
    manifest = generate_corpus(workdir / "corpus", 14, seed=3, progress=False)
    cfg = load_config(TINY_CONFIG, [f"workdir={workdir}", *RANDOM_OVERRIDES])
    first = ingest(first_rows_manifest(manifest, 10), cfg.paths.shards, cfg.ingest, progress=False)
    too_long = add_shard_with_too_long_utterance(cfg.paths.shards)
    return RandomCorpus(workdir, manifest, first, too_long)


def random_config(corpus: RandomCorpus, cache_dir: Path, store_name: str, *overrides: str) -> AuraConfig:
    return make_config(TINY_CONFIG, corpus.workdir, cache_dir, *RANDOM_OVERRIDES,
                       f"paths.store={corpus.workdir / store_name}", *overrides)


@dataclass
class IncrementalRuns:
    cfg: AuraConfig
    runs: list[PrecomputeSummary]  # first, repeat, after ingesting more
    committed_after: list[set[str]]  # the store's committed shards after each run
    shards_before: list[str]
    more: IngestSummary  # the second ingest (4 more utterances)


@pytest.fixture(scope="module")
def random_reference(random_corpus, model_cache_dir, local_ray) -> IncrementalRuns:
    """Uninterrupted runs on the RANDOM corpus: 6 shards, the same again, then 2 more ingested.

    The final store is the reference for the SIGKILL and race tests.
    """
    cfg = random_config(random_corpus, model_cache_dir, "reference.zarr")
    shards_before = ShardSet(cfg.paths.shards).shard_names()
    runs, committed_after = [], []

    def run_and_snapshot() -> None:
        runs.append(run_precompute(cfg, progress=False))
        committed_after.append(open_store_for(cfg).committed_shards())

    run_and_snapshot()
    run_and_snapshot()
    more = ingest(random_corpus.manifest, cfg.paths.shards, cfg.ingest, progress=False)
    run_and_snapshot()
    return IncrementalRuns(cfg, runs, committed_after, shards_before, more)


@dataclass
class RealRun:
    cfg: AuraConfig
    summary: PrecomputeSummary
    live: dict[str, np.ndarray]  # key -> the teacher's states computed in this process
    shard_keys: dict[str, list[str]]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, model_cache_dir, local_ray) -> RealRun:
    """The REAL corpus through the Ray job, while this process runs the same teacher live.

    The two run side by side (the Ray actor on one core, this process on the other).
    """
    from pipeline.models.teacher import WhisperTeacher, window_options
    from pipeline.store import teacher_fingerprint

    workdir = tmp_path_factory.mktemp("precompute-real")
    cfg = make_config(DEMO_CONFIG, workdir, model_cache_dir, *REAL_OVERRIDES)
    manifest = generate_corpus(workdir / "corpus", 8, seed=1, progress=False)
    ingest(manifest, cfg.paths.shards, cfg.ingest, progress=False)
    shards = ShardSet(cfg.paths.shards)
    fingerprint = teacher_fingerprint(cfg)
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(run_precompute, cfg, False)
        teacher = WhisperTeacher.from_spec(cfg.models.teacher, cfg.models.cache_dir, layers=fingerprint.layers,
                                           pooling=fingerprint.pooling, **window_options(fingerprint))
        live, shard_keys = {}, {}
        for shard in shards.shard_names():
            samples = list(shards.iter_shard(shard))
            shard_keys[shard] = [s.key for s in samples]
            for sample in samples:  # one at a time: the job batches them, which must not matter
                live[sample.key] = teacher.encode([sample.audio])[0]
        summary = job.result(timeout=JOB_TIMEOUT_S)
    return RealRun(cfg, summary, live, shard_keys)


# ---------------------------------------------------------------------------------------------- tests
def test_real_teacher_states_stored_within_fp16_rounding(real_run):
    summary, cfg = real_run.summary, real_run.cfg
    assert summary.ok and summary.computed == 3 == summary.total_shards, summary.describe()
    store = open_store_for(cfg)
    assert store.fingerprint.layers == [1, 2, 3, 4] and store.fingerprint.codec == "fp16"
    assert store.committed_shards() == set(real_run.shard_keys)
    assert store.failures() == {}
    for shard, keys in real_run.shard_keys.items():
        assert store.commit_info(shard).keys == keys  # shard order, whatever the batch order was
    assert sorted(store.keys()) == sorted(real_run.live)
    lengths = store.lengths()
    for key, live in real_run.live.items():
        stored = store.read(key)
        assert stored.shape == live.shape == (4, lengths[key], 384)
        for position, layer in enumerate(store.fingerprint.layers):
            # fp16 keeps 11 significant bits: within one unit in the last place of the live value.
            np.testing.assert_allclose(stored[position], live[position], rtol=2**-10, atol=1e-6,
                                       err_msg=f"{key} layer {layer}")
            assert np.abs(live[position]).max() > 0.1  # real activations, not zeros
    assert verify(store).ok


def test_stored_frames_match_audio_length(real_run):
    lengths = open_store_for(real_run.cfg).lengths()
    shards = ShardSet(real_run.cfg.paths.shards)
    for shard in shards.shard_names():
        for sample in shards.iter_shard(shard):
            assert lengths[sample.key] == teacher_frames(len(sample.audio))


def test_incremental_runs_compute_exactly_the_missing_shards(random_reference, random_corpus):
    first, repeat, after_more = random_reference.runs
    before = random_reference.shards_before
    assert random_corpus.first_ingest.new_shards == [f"shard-{i:06d}" for i in range(5)]
    assert before == [*random_corpus.first_ingest.new_shards, random_corpus.too_long_shard]
    assert (first.total_shards, first.skipped_committed, first.computed) == (6, 0, 6), first.describe()
    assert random_reference.committed_after[0] == set(before)

    assert (repeat.total_shards, repeat.skipped_committed, repeat.computed) == (6, 6, 0)
    assert repeat.results == []  # nothing was even handed to Ray
    assert random_reference.committed_after[1] == set(before)

    more = random_reference.more
    assert more.skipped_existing == 10 and more.ingested == 4
    new_shards = more.new_shards
    assert new_shards == ["shard-000006", "shard-000007"]  # k = 2 new shards
    assert (after_more.total_shards, after_more.skipped_committed, after_more.computed) == (8, 6, 2)
    assert sorted(r.shard for r in after_more.results if r.status == "computed") == new_shards
    assert random_reference.committed_after[2] == set(before) | set(new_shards)


def test_per_sample_teacher_failure_is_recorded_not_fatal(random_reference, random_corpus):
    first = random_reference.runs[0]
    bad = random_corpus.too_long_shard
    assert first.ok, first.describe()
    result = next(r for r in first.results if r.shard == bad)
    assert (result.status, result.samples, result.failures) == ("computed", 1, 1)
    assert result.audio_seconds == pytest.approx(1.5)  # the encoded utterance only, not the failed 31 s one
    assert "1 sample(s) failed in the teacher" in first.describe()

    store = open_store_for(random_reference.cfg)
    assert bad in store.committed_shards()
    failures = store.failures()
    assert list(failures) == [TOO_LONG_KEY] and "30 s" in failures[TOO_LONG_KEY]
    commit = store.commit_info(bad)
    assert commit.keys == [BESIDE_TOO_LONG_KEY] and commit.failures.keys() == {TOO_LONG_KEY}
    # The good utterance of the same batch was encoded alone after the batch failed.
    assert store.read(BESIDE_TOO_LONG_KEY).shape == (2, teacher_frames(24000), 64)
    assert TOO_LONG_KEY not in store


def test_fingerprint_mismatch_is_refused_naming_the_field(random_reference, random_corpus, model_cache_dir):
    reference_cfg = random_reference.cfg
    before = open_store_for(reference_cfg).commits()
    cases = {  # override -> fields the refusal must name
        "store.codec=int8": ["codec"],
        "store.layers=[1, 2]": ["layers"],
        "store.pooling=2": ["pooling", "frame_rate_hz"],  # pooling changes the stored frame rate too
        # the store was written in trim mode (the default); the full window has no trim settings
        "store.window=full": ["window", "window_step_s", "min_window_s"],
        "store.window_step_s=0.5": ["window_step_s"],
    }
    for override, fields in cases.items():
        cfg = random_config(random_corpus, model_cache_dir, "reference.zarr", override)
        with pytest.raises(FingerprintMismatch) as refused:
            run_precompute(cfg, progress=False)
        assert refused.value.fields == fields
        assert all(f"{field}: expected" in str(refused.value) for field in fields), str(refused.value)
        with pytest.raises(FingerprintMismatch, match=fields[0]):
            open_store_for(cfg)
    after = open_store_for(reference_cfg)
    assert after.commits() == before  # nothing written by the refused runs
    assert after.leases() == []


def test_target_stats_cover_the_training_split_and_follow_growth(random_reference):
    """After each run the store root holds per-layer mean/std over the train-split frames of every
    committed shard: equal to numpy over the stored data of those samples, held-out ones excluded,
    and after the growth run equal to a computation from scratch over all 8 shards."""
    from feature_store.stats import TARGET_STATS_FILE

    cfg = random_reference.cfg
    store = open_store_for(cfg)
    assert (Path(cfg.paths.store) / TARGET_STATS_FILE).is_file()
    assert "target statistics: written" in random_reference.runs[-1].describe()
    shards = ShardSet(cfg.paths.shards)
    split = {s.key: s.meta.get("split") or "train" for name in shards.shard_names() for s in shards.iter_shard(name)}
    keys = store.keys()
    assert {split[k] for k in keys} >= {"train", "heldout"}  # the exclusion is really exercised
    train = np.concatenate([store.read(k) for k in keys if split[k] == "train"], axis=1)
    stats = store.target_stats()
    assert stats.frames == train.shape[1] and stats.shards == 8
    np.testing.assert_allclose(stats.mean, train.mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.std, train.std(axis=1), rtol=1e-5, atol=1e-6)
    fresh = store.aggregate_target_stats()
    np.testing.assert_array_equal(stats.mean, fresh.mean)  # the file is what aggregation gives
    everything = np.concatenate([store.read(k) for k in keys], axis=1)
    assert not np.allclose(stats.mean, everything.mean(axis=1), rtol=1e-5, atol=1e-6)


def test_fingerprint_records_the_window_settings(random_corpus, model_cache_dir):
    from pipeline.store import teacher_fingerprint

    trim = teacher_fingerprint(random_config(random_corpus, model_cache_dir, "x.zarr"))
    assert (trim.window, trim.window_step_s, trim.min_window_s) == ("trim", 2.0, 0.0)
    full = teacher_fingerprint(random_config(random_corpus, model_cache_dir, "x.zarr", "store.window=full"))
    assert (full.window, full.window_step_s, full.min_window_s) == ("full", None, None)


def test_worker_holds_its_lease_while_encoding_past_the_ttl(random_corpus, model_cache_dir):
    """A shard that takes longer than the lease ttl to encode stays claimed (heartbeats), so a second
    job cannot take it over and compute it twice. In-process worker, no Ray."""
    from pipeline.precompute import TeacherWorker
    from pipeline.store import teacher_fingerprint

    cfg = random_config(random_corpus, model_cache_dir, "slow-encode.zarr")
    worker = TeacherWorker(cfg.model_dump_json(), teacher_fingerprint(cfg).model_dump_json(), owner="slow-job")
    shard, ttl_s = "shard-000000", 0.4
    claim = worker.store.try_claim
    worker.store.try_claim = lambda name, owner=None: claim(name, owner, ttl_s=ttl_s)  # short-lived leases
    encode, taken_over = worker._encode_all, []

    def slow_encode(samples):
        time.sleep(3 * ttl_s)  # the lease would be stale by now without heartbeats
        taken_over.append(claim(shard, "other-job", ttl_s=ttl_s))
        return encode(samples)

    worker._encode_all = slow_encode
    result = worker.process(shard)
    assert taken_over == [None], "another job took the lease of a shard being encoded"
    assert result.status == "computed" and worker.store.is_committed(shard)


def _start_job(cfg: AuraConfig, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray cluster
    with open(log_path, "w") as log:
        return subprocess.Popen(job_command(cfg), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_for_commits(proc: subprocess.Popen, store_path: Path, count: int, log_path: Path) -> None:
    """Until ``count`` shards are committed (``0``: until the store exists, i.e. the job is running)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while committed_marker_count(store_path) < count or not store_path.exists():
        if proc.poll() is not None:
            pytest.fail(f"job exited ({proc.returncode}) before {count} commit(s):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{count} commit(s) not reached within {JOB_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.01)


@pytest.mark.faults("precompute", "SIGKILL of the whole job (driver + Ray) at a random point, then re-run")
@pytest.mark.parametrize("seed", fault_seeds(in_ci=2))
def test_sigkill_mid_run_then_rerun_equals_uninterrupted(seed, random_reference, random_corpus, model_cache_dir,
                                                         tmp_path):
    reference_cfg = random_reference.cfg
    cfg = random_config(random_corpus, model_cache_dir, f"killed-{seed}.zarr")
    total = len(ShardSet(cfg.paths.shards).shard_names())
    assert total == 8
    rng = random.Random(seed)
    # the trimmed-window teacher writes a tiny shard in tens of milliseconds: kill within a short
    # delay of the k-th commit, with at least two shards still to go
    kill_after, extra_delay_s = rng.randrange(0, total - 2), rng.uniform(0.0, 0.05)
    log_path = tmp_path / "killed-job.log"
    proc = _start_job(cfg, log_path)
    started = time.monotonic()
    try:
        _wait_for_commits(proc, cfg.paths.store, kill_after, log_path)
        time.sleep(extra_delay_s)
    finally:
        kill_job_session(proc)  # the driver, Ray's GCS/raylet and the TeacherWorker actor
    committed_at_kill = committed_marker_count(cfg.paths.store)
    print(f"seed {seed}: killed the job {time.monotonic() - started:.1f} s after its start, {committed_at_kill} of "
          f"{total} shards committed")
    assert committed_at_kill < total, f"kill landed after {committed_at_kill} of {total} shards"

    rerun = run_precompute(cfg, progress=False)
    assert rerun.ok, rerun.describe()
    assert rerun.skipped_committed == committed_at_kill
    assert rerun.computed == total - committed_at_kill  # the partly written group included
    assert all(r.status == "computed" for r in rerun.results)  # the dead job's lease was taken over

    store = open_store_for(cfg)
    report = verify(store)
    assert report.ok and report.count("ok") == total and report.count("uncommitted") == 0, report.summary()
    assert_same_store(store, open_store_for(reference_cfg))


def _actor_pids(session_id: int, title: str = "ray::TeacherWorker") -> list[int]:
    pids = []
    for pid in session_processes(session_id):
        try:
            if (Path("/proc") / str(pid) / "cmdline").read_bytes().startswith(title.encode()):
                pids.append(pid)
        except OSError:
            pass
    return pids


@pytest.mark.faults("precompute", "SIGKILL of one Ray teacher worker at a random point")
@pytest.mark.parametrize("seed", fault_seeds(in_ci=1))
def test_a_killed_teacher_worker_is_restarted_and_the_job_finishes(seed, random_reference, random_corpus,
                                                                   model_cache_dir, tmp_path):
    cfg = random_config(random_corpus, model_cache_dir, f"worker-killed-{seed}.zarr")
    total = len(ShardSet(cfg.paths.shards).shard_names())
    rng = random.Random(seed)
    # a tiny shard takes tens of milliseconds: the kill lands within a few of the k-th commit, with at
    # least two shards still to go, so the job cannot have finished before it
    kill_after, extra_delay_s = rng.randrange(0, total - 2), rng.uniform(0.0, 0.01)
    log_path = tmp_path / "job.log"
    proc = _start_job(cfg, log_path)
    try:
        _wait_for_commits(proc, cfg.paths.store, 0, log_path)
        deadline = time.monotonic() + 60
        while not (actors := _actor_pids(proc.pid)) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert actors, f"no teacher actor found:\n{log_path.read_text()[-3000:]}"
        _wait_for_commits(proc, cfg.paths.store, kill_after, log_path)
        time.sleep(extra_delay_s)
        os.kill(actors[0], signal.SIGSTOP)  # frozen where it is, so the count below is the count at the kill
        committed_at_kill = committed_marker_count(cfg.paths.store)
        os.kill(actors[0], signal.SIGKILL)
        proc.wait(timeout=JOB_TIMEOUT_S)
    finally:
        kill_job_session(proc)
    log = log_path.read_text()
    print(f"seed {seed}: killed actor {actors[0]} with {committed_at_kill} of {total} shards committed")
    assert committed_at_kill < total, f"kill landed after all {total} shards were committed"
    assert proc.returncode == 0, log[-3000:]  # Ray restarted the actor and retried its shard
    store = open_store_for(cfg)
    report = verify(store)
    assert report.ok and report.count("ok") == total and report.count("uncommitted") == 0, report.summary()
    assert store.leases() == []
    assert_same_store(store, open_store_for(random_reference.cfg))


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")


@pytest.mark.faults("precompute", "disk full (ENOSPC) during store writes, then space freed")
def test_full_disk_fails_clearly_and_resumes_after_space_is_freed(random_reference, random_corpus,
                                                                  model_cache_dir, tmp_path):
    reference = open_store_for(random_reference.cfg)
    used = sum(p.stat().st_size for p in Path(random_reference.cfg.paths.store).rglob("*") if p.is_file())
    small = tmp_path / "small-disk"
    _mount_tmpfs(small, f"{max(used // 2, 64 * 1024)}")  # room for about half the store
    try:
        cfg = make_config(TINY_CONFIG, random_corpus.workdir, model_cache_dir, *RANDOM_OVERRIDES,
                          f"paths.store={small / 'store.zarr'}")
        log_path = tmp_path / "full.log"
        proc = _start_job(cfg, log_path)
        try:
            proc.wait(timeout=JOB_TIMEOUT_S)
        finally:
            kill_job_session(proc)
        log = log_path.read_text()
        assert proc.returncode == 1, log[-3000:]
        assert "No space left on device" in log and "FAILED shard-" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]  # a clear per-shard error, not a crash
        full = open_store_for(cfg)
        committed = full.committed_shards()
        assert 0 < len(committed) < 8
        report = verify(full)
        assert report.ok and report.count("ok") == len(committed), report.summary()  # nothing committed is damaged

        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)  # space freed
        rerun = run_precompute(cfg, progress=False)
        assert rerun.ok and rerun.skipped_committed == len(committed), rerun.describe()
        store = open_store_for(cfg)
        report = verify(store)
        assert report.ok and report.count("ok") == 8 and report.count("uncommitted") == 0, report.summary()
        assert_same_store(store, reference)
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


def test_two_jobs_at_once_never_corrupt_the_store(random_reference, random_corpus, model_cache_dir, local_ray):
    """Two jobs (each its own driver call, owner and actor pool) released at the same instant on one
    fresh store: the leases give every shard to exactly one of them."""
    cfg = random_config(random_corpus, model_cache_dir, "raced.zarr")
    all_shards = set(ShardSet(cfg.paths.shards).shard_names())
    start_together = threading.Barrier(2)

    def job() -> PrecomputeSummary:
        start_together.wait()
        return run_precompute(cfg, progress=False)

    with ThreadPoolExecutor(2) as pool:
        summaries = [future.result(timeout=JOB_TIMEOUT_S) for future in [pool.submit(job) for _ in range(2)]]
    computed = []
    for summary in summaries:
        assert summary.ok, summary.describe()  # both finish
        assert {r.status for r in summary.results} <= {"computed", "claimed-elsewhere", "committed-already"}
        computed.append({r.shard for r in summary.results if r.status == "computed"})
    print("race:", [Counter(r.status for r in s.results) for s in summaries])
    assert computed[0].isdisjoint(computed[1]) and computed[0] | computed[1] == all_shards

    store = open_store_for(cfg)
    report = verify(store)
    assert report.ok and report.count("ok") == len(all_shards), report.summary()
    assert report.count("uncommitted") == 0
    # Every shard committed exactly once, by the job that says it computed it.
    by_owner: dict[str, set[str]] = {}
    for shard, commit in store.commits().items():
        by_owner.setdefault(commit.owner, set()).add(shard)
    assert sorted(map(sorted, by_owner.values())) == sorted(sorted(c) for c in computed if c)
    assert store.leases() == []
    assert_same_store(store, open_store_for(random_reference.cfg))
