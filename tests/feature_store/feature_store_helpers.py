"""Helpers shared by the feature store tests and the worker processes they start.

A plain module (not conftest) so that spawned and killed child processes can import it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from feature_store import FeatureStore, MelSettings, StoreFingerprint

WIDTH = 32
LAYERS = [0, 2, 4]
REPO_ROOT = Path(__file__).resolve().parents[2]


def make_fingerprint(**overrides) -> StoreFingerprint:
    fields = dict(
        teacher="random-tiny-whisper",
        teacher_weights="0" * 64,
        layers=LAYERS,
        pooling=1,
        codec="fp16",
        width=WIDTH,
        frame_rate_hz=50.0,
        mel=MelSettings(n_mels=80, sampling_rate=16000, hop_length=160, n_fft=400),
    )
    fields.update(overrides)
    return StoreFingerprint(**fields)


def activations(
    rng: np.random.Generator, layers: int, frames: int, width: int, outliers: int = 3
) -> np.ndarray:
    """Transformer-like hidden states: gaussian, with a few outlier channels ~20x larger, one
    of them also offset by +60 (the "massive activations" Whisper and LLMs have), which is
    what stresses absmax int8 quantisation."""
    x = rng.standard_normal((layers, frames, width)).astype(np.float32)
    if outliers:
        channels = rng.choice(width, size=outliers, replace=False)
        x[..., channels] *= 20.0
        x[..., channels[0]] += 60.0
    return x


def sample_features(key: str, num_layers: int = len(LAYERS), width: int = WIDTH) -> np.ndarray:
    """Deterministic features for a key, so that another process can write what a test expects."""
    seed = int.from_bytes(key.encode()[-8:].rjust(8, b"\0"), "little") % (2**32)
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(5, 60))
    return activations(rng, num_layers, frames, width)


def shard_keys(shard: str, count: int = 4) -> list[str]:
    return [f"{shard}-utt{i:03d}" for i in range(count)]


def write_shard(store: FeatureStore, shard: str, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """Write `keys` (features from sample_features) as one committed shard; returns them."""
    keys = shard_keys(shard) if keys is None else keys
    fp = store.fingerprint
    features = {key: sample_features(key, fp.num_layers, fp.width) for key in keys}
    with store.shard_writer(shard) as writer:
        for key, x in features.items():
            writer.add(key, x)
    return features


def concurrent_precompute_worker(
    store_path: str, shards: list[str], owner: str, inflight_dir: str, result_path: str,
    start_together=None,
) -> None:
    """One precompute job: claim whatever shards it can and write them.

    While writing a shard it holds ``inflight_dir/<shard>`` created with O_EXCL: if two
    workers ever wrote the same shard at once, the second creation fails and is recorded.
    """
    store = FeatureStore.open(store_path, make_fingerprint(), mode="a", chunk_frames=16)
    if start_together is not None:
        start_together.wait()  # a barrier: both jobs race for the same first shard
    written, violations = [], []
    for lease in store.iter_claims(shards, owner=owner):
        marker = os.path.join(inflight_dir, lease.shard_name)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            violations.append(lease.shard_name)
        with store.shard_writer(lease.shard_name, lease) as writer:
            for key in shard_keys(lease.shard_name):
                writer.add(key, sample_features(key))
                time.sleep(0.03)  # widen the window in which a second writer could interfere
        os.unlink(marker)
        written.append(lease.shard_name)
    with open(result_path, "w") as f:
        f.write("\n".join(["written " + s for s in written] + ["violation " + s for s in violations]))


def slow_writer_main(store_path: str, shard: str) -> None:
    """Write `shard` slowly, announcing on stdout once chunks are on disk, until killed."""
    store = FeatureStore.open(store_path, make_fingerprint(), mode="a", chunk_frames=16)
    with store.shard_writer(shard, owner="doomed-writer", flush_frames=16) as writer:
        announced = False
        for i in range(10_000):
            key = f"{shard}-utt{i:05d}"
            writer.add(key, sample_features(key))
            if writer.num_frames > writer.num_pending_frames and not announced:
                print("WRITING", flush=True)  # some chunks are on disk now
                announced = True
            time.sleep(0.02)


if __name__ == "__main__":
    # python feature_store_helpers.py slow-writer <store> <shard>
    if sys.argv[1] == "slow-writer":
        slow_writer_main(sys.argv[2], sys.argv[3])
