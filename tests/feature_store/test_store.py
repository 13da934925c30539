import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from feature_store_helpers import (
    REPO_ROOT,
    concurrent_precompute_worker,
    make_fingerprint,
    sample_features,
    shard_keys,
    write_shard,
)

from feature_store import (
    FeatureStore,
    FingerprintMismatch,
    LeaseLost,
    ShardAlreadyCommitted,
    ShardBusy,
    cosine_fidelity,
    verify,
)
from feature_store.codecs import decode, encode
from feature_store.schema import COMMIT_MARKER


def expected_after_codec(x, codec):
    enc = encode(x, codec)
    return decode(enc.values, enc.scale, codec, enc.channel_scale)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", ["fp16", "bf16", "int8"])
def test_round_trip_per_codec(new_store, codec):
    store = new_store(codec)
    # 12 samples of 5-60 frames with 16-frame chunks: samples straddle chunks and flushes.
    features = write_shard(store, "shard-a", shard_keys("shard-a", 12))
    assert store.committed_shards() == {"shard-a"}
    assert store.keys() == list(features)
    for key, x in features.items():
        y = store.read(key)
        assert y.dtype == np.float32 and y.shape == x.shape
        # Reading back gives exactly what the codec alone gives: storage adds no error.
        np.testing.assert_array_equal(y, expected_after_codec(x, codec))
        assert cosine_fidelity(x, y).min() > 0.999
    iterated = dict(store.iter_shard("shard-a"))
    assert list(iterated) == list(features)
    for key in features:
        np.testing.assert_array_equal(iterated[key], store.read(key))
    key, tensor = next(store.iter_shard_torch("shard-a"))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    torch.testing.assert_close(tensor, store.read_torch(key))


def test_layer_subset_read(new_store):
    store = new_store("int8")
    features = write_shard(store, "s")
    key = next(iter(features))
    full = store.read(key)
    np.testing.assert_array_equal(store.read(key, layers=[4, 0]), full[[2, 0]])
    assert np.array_equal(dict(store.iter_shard("s", layers=[2]))[key], full[[1]])
    with pytest.raises(KeyError, match="not stored"):
        store.read(key, layers=[3])


def test_ragged_storage_has_no_padding(new_store):
    store = new_store("fp16")
    features = write_shard(store, "s")
    group = store.open_shard_group("s")
    lengths = [x.shape[1] for x in features.values()]
    assert group["data"].shape == (sum(lengths), 3, 32)
    assert group["data"].chunks == (16, 3, 32)
    np.testing.assert_array_equal(group["offsets"][:], np.cumsum([0, *lengths]))
    np.testing.assert_array_equal(group["lengths"][:], lengths)
    assert [str(k) for k in group["keys"][:]] == list(features)
    assert store.lengths() == dict(zip(features, lengths))


def test_reopen_reads_without_fingerprint_and_read_only_refuses_writes(new_store, store_path):
    features = write_shard(new_store("bf16"), "s")
    reader = FeatureStore.open(store_path)  # mode "r", stored fingerprint accepted
    assert reader.fingerprint == make_fingerprint(codec="bf16")
    assert set(reader.keys()) == set(features)
    with pytest.raises(PermissionError):
        reader.shard_writer("t")
    with pytest.raises(FileNotFoundError):
        FeatureStore.open(store_path.parent / "absent.zarr", make_fingerprint())


def test_open_refuses_a_different_fingerprint_naming_fields(new_store, store_path):
    new_store("fp16")
    with pytest.raises(FingerprintMismatch) as info:
        FeatureStore.open(store_path, make_fingerprint(codec="int8", layers=[0, 2]), mode="a")
    assert info.value.fields == ["layers", "codec"]
    assert "codec: expected 'int8', found 'fp16'" in str(info.value)
    with pytest.raises(FingerprintMismatch, match="pooling"):
        FeatureStore.open(store_path, make_fingerprint(pooling=2))  # reading is refused too


def test_add_validates_samples(new_store):
    store = new_store()
    with store.shard_writer("s") as writer:
        writer.add("a", sample_features("a"))
        with pytest.raises(ValueError, match="expected"):
            writer.add("b", np.zeros((2, 10, 32), np.float32))  # wrong layer count
        with pytest.raises(ValueError, match="already added"):
            writer.add("a", sample_features("a"))
        bad = sample_features("c")
        bad[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            writer.add("c", bad)
        writer.add_failure("c", "teacher produced NaN")
    assert store.keys() == ["a"]
    assert store.failures() == {"c": "teacher produced NaN"}


def test_shard_of_only_failures_commits(new_store):
    store = new_store("int8")
    with store.shard_writer("s") as writer:
        writer.add_failure("x", "undecodable flac")
    assert store.committed_shards() == {"s"}
    assert store.keys() == [] and store.failures() == {"x": "undecodable flac"}
    assert verify(store).ok


# ---------------------------------------------------------------- commit protocol


def test_exception_in_writer_commits_nothing(new_store):
    store = new_store()
    with pytest.raises(RuntimeError, match="teacher crashed"):
        with store.shard_writer("s") as writer:
            writer.add("a", sample_features("a"))
            raise RuntimeError("teacher crashed")
    assert store.committed_shards() == set()
    assert "s" not in store.shard_groups()  # the partial group was removed
    assert not store.leases()  # and the lease released
    assert store.try_claim("s") is not None


def test_uncommitted_group_is_ignored_and_redone(new_store, store_path):
    store = new_store()
    old = write_shard(store, "s", ["old-1", "old-2"])
    os.unlink(store_path / "shards" / "s" / COMMIT_MARKER)  # as if killed just before commit
    reader = FeatureStore.open(store_path)
    assert reader.committed_shards() == set() and reader.shard_groups() == {"s"}
    assert reader.keys() == []
    with pytest.raises(KeyError):
        reader.read("old-1")
    assert list(store.iter_claims(["s"]))[0].release() is None  # uncommitted: claimable
    new = write_shard(store, "s", ["new-1"])
    reader.refresh()
    assert reader.keys() == ["new-1"]
    np.testing.assert_array_equal(reader.read("new-1"), expected_after_codec(new["new-1"], "fp16"))
    assert "old-1" not in reader and len(old) == 2


def test_committed_shard_is_not_rewritten_unless_asked(new_store):
    store = new_store()
    write_shard(store, "s", ["a"])
    with pytest.raises(ShardAlreadyCommitted):
        with store.shard_writer("s"):
            pass
    assert list(store.iter_claims(["s", "t"])) != [] and store.committed_shards() == {"s"}
    with store.shard_writer("s", overwrite=True) as writer:
        writer.add("b", sample_features("b"))
    assert store.keys() == ["b"]


def test_shard_names_are_escaped(new_store):
    store = new_store()
    write_shard(store, "train/part 1.tar", ["k"])
    assert store.committed_shards() == {"train/part 1.tar"}
    assert (store.lengths()["k"]) == sample_features("k").shape[1]


def test_duplicate_key_across_shards_is_reported(new_store):
    store = new_store()
    write_shard(store, "s1", ["same"])
    write_shard(store, "s2", ["same"])
    with pytest.raises(ValueError, match="in shards"):
        store.keys()


# ---------------------------------------------------------------- leases


def test_live_lease_blocks_a_second_writer(new_store):
    store = new_store()
    lease = store.try_claim("s", owner="first")
    assert lease is not None
    assert store.try_claim("s", owner="second") is None
    with pytest.raises(ShardBusy):
        store.shard_writer("s")
    assert [(entry["shard_name"], entry["stale"]) for entry in store.leases()] == [("s", None)]
    lease.release()
    assert store.try_claim("s", owner="second") is not None


def test_expired_lease_is_stolen(new_store):
    store = new_store()
    lease = store.try_claim("s", owner="slow", ttl_s=0.05)
    time.sleep(0.1)
    thief = store.try_claim("s", owner="thief")
    assert thief is not None and thief.is_held() and not lease.is_held()
    with pytest.raises(LeaseLost):
        lease.renew()


def test_writer_that_lost_its_lease_does_not_commit(new_store, store_path):
    store = new_store()
    with pytest.raises(LeaseLost):
        with store.shard_writer("s") as writer:
            writer.add("a", sample_features("a"))
            # Another worker judged us dead and took the shard over.
            lease_file = writer.lease.path
            info = json.loads(lease_file.read_text())
            lease_file.write_text(json.dumps({**info, "token": "someone-else"}))
    assert store.committed_shards() == set()
    assert "s" in store.shard_groups()  # left for the new owner, not deleted by the loser


@pytest.mark.faults("feature store", "writer SIGKILLed mid-write: shard left uncommitted, redone")
def test_writer_killed_mid_write_leaves_shard_uncommitted(new_store, store_path):
    store = new_store()
    write_shard(store, "done")
    child = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests/feature_store/feature_store_helpers.py"),
         "slow-writer", str(store_path), "doomed"],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert child.stdout.readline().strip() == "WRITING"
        time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    group = store_path / "shards" / "doomed"
    assert (group / "data" / "c").is_dir() and not (group / COMMIT_MARKER).exists()

    reader = FeatureStore.open(store_path)
    assert reader.committed_shards() == {"done"}
    assert set(reader.keys()) == set(shard_keys("done"))
    reader.read(shard_keys("done")[0])
    assert verify(reader).to_dict()["doomed"]["state"] == "uncommitted"
    # The dead writer's lease names a dead pid on this host: it may be taken over at once.
    [lease_info] = reader.leases()
    assert lease_info["owner"] == "doomed-writer" and "dead" in lease_info["stale"]
    features = write_shard(store, "doomed", ["redo-1", "redo-2"])
    reader.refresh()
    assert reader.committed_shards() == {"done", "doomed"}
    assert {k for k in reader.keys() if k.startswith("redo")} == set(features)
    assert not any(k.startswith("doomed-") for k in reader.keys())
    assert verify(reader).ok


def test_concurrent_jobs_never_write_the_same_shard(new_store, store_path, tmp_path):
    new_store()  # created up front, as the precompute driver does
    shards = [f"shard-{i}" for i in range(6)]
    inflight = tmp_path / "inflight"
    inflight.mkdir()
    ctx = multiprocessing.get_context("spawn")  # forking a process with threads (zarr's loop) is fragile
    barrier = ctx.Barrier(2)
    jobs = [
        ctx.Process(
            target=concurrent_precompute_worker,
            args=(str(store_path), shards, f"job-{j}", str(inflight), str(tmp_path / f"job-{j}.txt"),
                  barrier),
        )
        for j in range(2)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
        assert job.exitcode == 0
    written = []
    for j in range(2):
        lines = (tmp_path / f"job-{j}.txt").read_text().splitlines()
        assert not [line for line in lines if line.startswith("violation")]
        written.append({line.split()[1] for line in lines if line.startswith("written")})
    assert written[0].isdisjoint(written[1])
    assert written[0] | written[1] == set(shards)
    assert written[0] and written[1]  # both really worked (each shard takes >= 120 ms)
    store = FeatureStore.open(store_path)
    assert store.committed_shards() == set(shards)
    for shard in shards:
        for key in shard_keys(shard):
            np.testing.assert_array_equal(
                store.read(key), expected_after_codec(sample_features(key), "fp16")
            )
    assert verify(store).ok
    assert store.leases() == []  # every lease released


def test_thief_puts_back_a_fresh_lease_it_moved_by_mistake(new_store):
    from feature_store.lease import _steal, read_lease_file

    store = new_store()
    fresh = store.try_claim("s", owner="fresh")
    # A thief judged an older lease (another token) stale, but the file now holds `fresh`.
    assert _steal(fresh.path, {"token": "old-token"}) is False
    assert read_lease_file(fresh.path)["token"] == fresh.token and fresh.is_held()
    assert [p.name for p in fresh.path.parent.iterdir()] == [fresh.path.name]  # no debris


def test_newer_format_version_is_refused(new_store, store_path):
    import zarr

    new_store()
    root = zarr.open_group(store_path, mode="r+")
    meta = root.attrs["aura_feature_store"]
    meta["fingerprint"]["format_version"] += 1
    root.attrs["aura_feature_store"] = meta
    with pytest.raises(FingerprintMismatch, match="format_version"):
        FeatureStore.open(store_path)
