import numpy as np
import pytest
import zarr
from feature_store_helpers import write_shard

from feature_store import FeatureStore, verify
from feature_store.schema import COMMIT_MARKER


@pytest.fixture
def two_shards(new_store):
    store = new_store("int8")
    write_shard(store, "good")
    write_shard(store, "bad")
    return store


def chunk_file(store_path, shard, array="data", index=1):
    """Path of one chunk file (zarr v3 default keys: <array>/c/<i>/<j>/...)."""
    tail = {"data": "/0/0", "scale": "/0", "channel_scale": "/0/0"}[array]
    return store_path / "shards" / shard / array / "c" / f"{index}{tail}"


def test_clean_store_verifies(two_shards):
    report = verify(two_shards)
    assert report.ok and report.count("ok") == 2
    assert "2 shards: 2 ok, 0 damaged, 0 uncommitted" in report.summary()


@pytest.mark.faults("feature store", "flipped byte in a stored chunk")
def test_flipped_byte_in_a_data_chunk_is_detected(two_shards, store_path):
    path = chunk_file(store_path, "bad")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    report = verify(two_shards)
    assert report.damaged == ["bad"] and report.shards["good"].state == "ok"
    [problem] = report.shards["bad"].problems
    assert problem.startswith("data chunk 1 (frames 16-31, data/c/1/0/0) unreadable")
    # ... and a training read of a damaged chunk fails loudly instead of returning noise.
    with pytest.raises(Exception):
        for _ in two_shards.iter_shard("bad"):
            pass


@pytest.mark.faults("feature store", "truncated chunk file")
def test_truncated_chunk_file_is_detected(two_shards, store_path):
    path = chunk_file(store_path, "bad", "scale", 0)
    path.write_bytes(path.read_bytes()[:5])
    report = verify(two_shards)
    assert report.damaged == ["bad"]
    assert "scale chunk 0" in report.shards["bad"].problems[0]


@pytest.mark.faults("feature store", "deleted chunk file")
def test_deleted_chunk_file_is_detected(two_shards, store_path):
    # zarr reads a missing chunk as fill values without complaint: only verify notices.
    chunk_file(store_path, "bad", "data", 0).unlink()
    problems = verify(two_shards).shards["bad"].problems
    assert "data: 1 of" in problems[0] and "chunk files missing" in problems[0]
    assert any("sha256" in p for p in problems)


@pytest.mark.faults("feature store", "damage behind a valid chunk checksum")
def test_damage_without_crc_is_caught_by_the_checksum(new_store, store_path):
    store = new_store("fp16")
    write_shard(store, "s")
    # Rewrite a chunk with a valid crc32c but other values, as a buggy copy tool might.
    data = zarr.open_array(store_path / "shards" / "s" / "data", mode="r+")
    data[0:16] = data[0:16] + np.float16(1)
    problems = verify(store).shards["s"].problems
    assert len(problems) == 1 and problems[0].startswith("data: sha256")


@pytest.mark.faults("feature store", "damaged commit marker")
def test_damaged_marker_is_reported(two_shards, store_path):
    (store_path / "shards" / "bad" / COMMIT_MARKER).write_text("{not json")
    report = verify(two_shards)
    assert report.damaged == ["bad"] and "marker unreadable" in report.shards["bad"].problems[0]
    assert two_shards.committed_shards() == {"good"}  # readers treat it as uncommitted


@pytest.mark.faults("feature store", "damaged groups repaired: only those recomputed")
def test_uncommit_damaged_then_recompute_only_those(two_shards, store_path):
    path = chunk_file(store_path, "bad", "channel_scale", 0)
    raw = bytearray(path.read_bytes())
    raw[3] ^= 0xFF
    path.write_bytes(bytes(raw))
    report = verify(two_shards, uncommit_damaged=True)
    assert report.damaged == ["bad"]
    assert two_shards.committed_shards() == {"good"}
    # The next precompute sees exactly the damaged shard as pending.
    claims = list(two_shards.iter_claims(["good", "bad"]))
    assert [lease.shard_name for lease in claims] == ["bad"]
    claims[0].release()
    write_shard(two_shards, "bad")
    assert verify(FeatureStore.open(store_path)).ok


def test_uncommit_needs_a_writable_store(two_shards, store_path):
    with pytest.raises(PermissionError):
        FeatureStore.open(store_path).uncommit("good")
