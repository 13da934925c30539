"""Per-layer target statistics: each committed group's train-split moments, aggregated by the store.

They must equal numpy's mean/std over the stored (decoded) frames of the training samples, exclude
held-out samples, survive growth (more shards -> the same as a computation from scratch), be cached
at the store root without going stale, and be covered by verify.
"""

from __future__ import annotations

import numpy as np
import pytest
from feature_store_helpers import LAYERS, WIDTH, activations

from feature_store import FeatureStore, TargetStats, verify
from feature_store.stats import TARGET_STATS_FILE


def write_shard(store: FeatureStore, name: str, rng, splits: list[str | None]) -> dict[str, str]:
    """One shard with a sample per entry of ``splits``; returns key -> split (None -> train)."""
    out = {}
    with store.shard_writer(name) as writer:
        for i, split in enumerate(splits):
            key = f"{name}-{i}"
            # held-out samples are shifted so that counting them would show
            x = activations(rng, len(LAYERS), int(rng.integers(3, 40)), WIDTH) + (50.0 if split == "heldout" else 0.0)
            writer.add(key, x, split=split)
            out[key] = split or "train"
        writer.add_failure(f"{name}-failed", "too long")
    return out


def numpy_stats(store: FeatureStore, splits: dict[str, str]) -> tuple[np.ndarray, np.ndarray, int]:
    train = np.concatenate([store.read(k) for k, s in splits.items() if s == "train"], axis=1).astype(np.float64)
    return train.mean(axis=1), train.std(axis=1), train.shape[1]


@pytest.mark.parametrize("codec", ["fp16", "int8"])
def test_stats_equal_numpy_over_train_frames_excluding_heldout(new_store, rng, codec):
    store = new_store(codec=codec)
    splits = write_shard(store, "shard-a", rng, ["train", "heldout", None, "train"])
    splits |= write_shard(store, "shard-b", rng, ["heldout", "train", "dev"])
    stats = store.target_stats()
    assert isinstance(stats, TargetStats) and stats.layers == LAYERS
    assert stats.mean.shape == stats.std.shape == (len(LAYERS), WIDTH) and stats.mean.dtype == np.float32
    mean, std, frames = numpy_stats(store, splits)
    assert (stats.frames, stats.samples, stats.shards) == (frames, 4, 2)
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(stats.std, std, rtol=1e-5, atol=1e-4)
    # held-out (and dev) frames are excluded: with them the mean is far off
    everything = np.concatenate([store.read(k) for k in splits], axis=1)
    assert np.abs(everything.mean(axis=1) - stats.mean).max() > 5


def test_stats_survive_growth_and_the_root_file_follows(new_store, rng, store_path):
    store = new_store()
    splits = write_shard(store, "shard-000", rng, ["train", "heldout", "train"])
    splits |= write_shard(store, "shard-001", rng, ["train", "train"])
    first = store.write_target_stats()
    assert (store_path / TARGET_STATS_FILE).is_file()
    np.testing.assert_array_equal(FeatureStore.open(store_path).target_stats().mean, first.mean)

    # growth: more shards; the root file is now stale and must not be used
    splits |= write_shard(store, "shard-002", rng, ["train", "heldout", "train", "train"])
    splits |= write_shard(store, "shard-003", rng, ["train"])
    reader = FeatureStore.open(store_path)
    grown = reader.target_stats()
    mean, std, frames = numpy_stats(reader, splits)
    assert grown.frames == frames and grown.shards == 4
    np.testing.assert_allclose(grown.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grown.std, std, rtol=1e-5, atol=1e-5)
    assert not np.allclose(grown.mean, first.mean)

    # rewriting the root file after growth gives the aggregate, and readers then take it from the file
    written = store.write_target_stats()
    np.testing.assert_allclose(written.mean, grown.mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(FeatureStore.open(store_path).target_stats().std, grown.std, rtol=1e-6, atol=1e-6)


def test_stats_after_a_repaired_shard_and_verify_covers_them(new_store, rng, store_path):
    store = new_store()
    splits = write_shard(store, "shard-000", rng, ["train", "train"])
    splits |= write_shard(store, "shard-001", rng, ["train", "heldout"])
    store.write_target_stats()
    assert verify(store).ok
    # damage the stats of one group behind zarr's back: verify names it; repairing drops its stats
    group = store._loc.path("shards/shard-001/stats_sum/c/0/0")
    data = bytearray(open(group, "rb").read())
    data[10] ^= 0xFF
    open(group, "wb").write(data)
    report = verify(store, uncommit_damaged=True)
    assert report.damaged == ["shard-001"] and "stats_sum" in report.summary()
    remaining = store.target_stats()  # the root file no longer matches the committed set
    mean, std, frames = numpy_stats(store, {k: s for k, s in splits.items() if k.startswith("shard-000")})
    assert remaining.frames == frames and remaining.shards == 1
    np.testing.assert_allclose(remaining.mean, mean, rtol=1e-5, atol=1e-5)


def test_standardise_and_variance_floor(new_store, rng):
    store = new_store()
    with store.shard_writer("shard-000") as writer:
        x = activations(rng, len(LAYERS), 30, WIDTH)
        x[:, :, 0] = 3.0  # a constant channel: variance 0, floored
        writer.add("k", x)
    stats = store.target_stats()
    assert stats.std[:, 0].min() == pytest.approx(1e-3)
    y = store.read("k")
    z = stats.standardise(y)
    np.testing.assert_allclose(z[:, :, 1:].mean(axis=1), 0, atol=1e-3)
    np.testing.assert_allclose(z[:, :, 1:].std(axis=1), 1, atol=1e-3)
    np.testing.assert_allclose(stats.standardise(y[[2, 0]], layers=[LAYERS[2], LAYERS[0]]), z[[2, 0]], rtol=1e-6)
    import torch

    np.testing.assert_allclose(stats.standardise(torch.from_numpy(y)).numpy(), z, rtol=1e-6)


def test_no_training_frames_means_no_stats(new_store, rng):
    store = new_store()
    write_shard(store, "shard-000", rng, ["heldout"])
    with pytest.raises(ValueError, match="no 'train'-split frames"):
        store.target_stats()
