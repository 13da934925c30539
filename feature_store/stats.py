"""Target statistics: per-layer, per-channel mean and standard deviation of the stored teacher states over
the training split, merged exactly from each shard group's moments (:class:`FrameMoments`), so that a
distillation loss can compare standardised targets (:class:`TargetStats`)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


TARGET_STATS_FILE = "target_stats.npz"
#: Samples of this split (a sample without one counts as training, as in pipeline.train.data)
#: contribute to the target statistics.
TARGET_STATS_SPLIT = "train"
#: Variance floor of the target statistics (std >= 1e-3): a constant channel must not blow up.
TARGET_STATS_VAR_EPS = 1e-6


class FrameMoments:
    """Count, sum and sum of squared deviations (float64, per layer and channel), combined with
    Chan et al.'s pairwise update: no sum-of-squares cancellation, however many frames."""

    def __init__(self, layers: int, width: int) -> None:
        self.count = 0
        self.sum = np.zeros((layers, width), dtype=np.float64)
        self.m2 = np.zeros((layers, width), dtype=np.float64)

    def add(self, count: int, total: np.ndarray, m2: np.ndarray) -> None:
        if count == 0:
            return
        if self.count == 0:
            self.count, self.sum, self.m2 = count, total.astype(np.float64), m2.astype(np.float64)
            return
        n = self.count + count
        delta = total / count - self.sum / self.count
        self.m2 = self.m2 + m2 + delta * delta * (self.count * count / n)
        self.sum = self.sum + total
        self.count = n

    def add_frames(self, x: np.ndarray) -> None:
        """Frames ``(layers, frames, width)``."""
        x = x.astype(np.float64)
        total = x.sum(axis=1)
        m2 = ((x - total[:, None, :] / x.shape[1]) ** 2).sum(axis=1)
        self.add(x.shape[1], total, m2)


@dataclass(frozen=True)
class TargetStats:
    """Per-layer, per-channel mean and standard deviation of the stored teacher states over the
    training split (:data:`TARGET_STATS_SPLIT`) of all committed shards.

    ``mean`` and ``std`` are float32 ``(layers, width)`` in fingerprint layer order; ``std`` is
    the population standard deviation, floored at ``sqrt(TARGET_STATS_VAR_EPS)``.

    Raw Whisper states share a large component (a constant training-mean vector already scores
    a high cosine), so a distillation loss should compare *standardised* targets: for teacher
    layer ``layers[i]``, ``y_std = (y - mean[i]) / std[i]`` per channel (:meth:`standardise`),
    and the student head predicts ``y_std`` (cosine or MSE on the standardised vectors; to get
    teacher-space states back, ``pred * std[i] + mean[i]``, e.g. for Whisper's decoder). Use
    these statistics for held-out targets too: they come from training frames only.
    """

    layers: list[int]
    mean: np.ndarray
    std: np.ndarray
    frames: int
    samples: int
    shards: int

    @classmethod
    def from_npz(cls, source: bytes | str | os.PathLike[str]) -> "TargetStats":
        """Statistics as a store writes them (``target_stats.npz``: its bytes, or a copy's path, e.g. the one beside
        a released student, whose target space a run that goes on from it keeps)."""
        with np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False) as f:
            return cls([int(layer) for layer in f["layers"]], f["mean"], f["std"], int(f["frames"]), int(f["samples"]),
                       int(f["shards"]))

    def positions(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return list(range(len(self.layers)))
        return [self.layers.index(layer) for layer in layers]

    def standardise(self, targets: np.ndarray, layers: Sequence[int] | None = None) -> np.ndarray:
        """``(targets - mean) / std`` for float ``(layers, frames, width)`` targets (numpy or
        torch); ``layers`` names their layer axis (default: all stored layers, in order)."""
        idx = self.positions(layers)
        mean, std = self.mean[idx][:, None, :], self.std[idx][:, None, :]
        if not isinstance(targets, np.ndarray):  # a torch tensor
            import torch

            mean = torch.as_tensor(mean, device=targets.device, dtype=targets.dtype)
            std = torch.as_tensor(std, device=targets.device, dtype=targets.dtype)
        return (targets - mean) / std


def stats_from_moments(layers: list[int], moments: FrameMoments, samples: int, shards: int) -> TargetStats:
    if moments.count == 0:
        raise ValueError(f"no {TARGET_STATS_SPLIT!r}-split frames in the committed shards: no target statistics")
    mean = moments.sum / moments.count
    var = np.maximum(moments.m2 / moments.count, TARGET_STATS_VAR_EPS)
    return TargetStats(layers, mean.astype(np.float32), np.sqrt(var).astype(np.float32),
                       moments.count, samples, shards)
