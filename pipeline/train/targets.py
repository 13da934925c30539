"""Teacher targets as the student is trained on them: stored states, pooled further, standardised.

Every reader of the store that compares a student with its teacher (the training recipes, ``aura eval``,
the decoder probe) goes through :class:`TargetPreparer`, so one config gives one target space.

    >>> import torch
    >>> from types import SimpleNamespace
    >>> from pipeline.config import StudentConfig
    >>> store = SimpleNamespace(fingerprint=SimpleNamespace(layers=[4], pooling=1))
    >>> prep = TargetPreparer(store, StudentConfig(pooling=2, standardize_targets=False))
    >>> targets, lengths = prep(torch.tensor([[[[1.0], [3.0], [5.0]]]]), torch.tensor([3]))
    >>> targets[4].flatten().tolist(), lengths.tolist()
    ([2.0, 5.0], [2])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pipeline.config import StudentConfig


def target_pooling(student_pooling: int | None, store_pooling: int) -> int:
    """How many stored frames the training averages into one target (1 = as stored).

    >>> target_pooling(4, 1), target_pooling(None, 2)
    (4, 1)
    """
    pooling = student_pooling or store_pooling
    if pooling % store_pooling:
        raise ValueError(f"student.pooling={pooling} must be a multiple of the store's pooling ({store_pooling})")
    return pooling // store_pooling


def standardised_targets(targets: dict[int, torch.Tensor], stats) -> dict[int, torch.Tensor]:
    """Each teacher layer's ``(batch, frames, width)`` targets as ``(y - mean) / std`` per channel, with the
    store's training-split :class:`feature_store.TargetStats`: the training-mean vector becomes 0, so a
    student that predicts the average scores cosine 0 instead of Whisper's shared component's ~0.9.

    >>> from feature_store.stats import TargetStats
    >>> stats = TargetStats([2], np.array([[1.0, 2.0]], np.float32), np.array([[2.0, 4.0]], np.float32), 1, 1, 1)
    >>> standardised_targets({2: torch.tensor([[[3.0, 2.0]]])}, stats)[2]
    tensor([[[1., 0.]]])
    """
    return {layer: stats.standardise(y.unsqueeze(0), [layer])[0] for layer, y in targets.items()}


def read_targets(store, keys: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stored states of ``keys`` as one zero-padded ``(B, layers, frames, width)`` float32 tensor, with lengths."""
    return pad_targets([store.read(k) for k in keys])


def pad_targets(arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(layers, frames, width)`` arrays as one zero-padded ``(B, layers, max_frames, width)`` float32 tensor,
    with the lengths.

    >>> targets, lengths = pad_targets([np.ones((2, 3, 4)), np.ones((2, 1, 4))])
    >>> tuple(targets.shape), lengths.tolist(), float(targets[1, :, 1:].abs().sum())
    ((2, 2, 3, 4), [3, 1], 0.0)
    """
    lengths = torch.tensor([a.shape[1] for a in arrays])
    layers, _, width = arrays[0].shape
    batch = torch.zeros(len(arrays), layers, int(lengths.max()), width)
    for i, a in enumerate(arrays):
        batch[i, :, : a.shape[1]] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    return batch, lengths


class TargetPreparer:
    """Stored ``(B, layers, frames, width)`` targets -> ``({layer: (B, T, width)}, lengths)`` in the student's space.

    Averaged by :func:`target_pooling` (``student.pooling`` over the store's), then standardised per channel
    when ``student.standardize_targets`` is on (with ``stats``, or the store's own statistics, read on first use:
    other statistics keep the target space of parts trained on another corpus, ``train.target_stats_from``).
    :meth:`to_teacher_space` undoes both for a prediction, e.g. for Whisper's decoder.
    """

    def __init__(self, store, student: StudentConfig, device: torch.device | str = "cpu", stats=None):
        self.store = store
        self.layers = list(store.fingerprint.layers)
        if stats is not None and list(stats.layers) != self.layers:
            raise ValueError(f"target statistics of teacher layers {list(stats.layers)} for targets of layers "
                             f"{self.layers}")
        self.pool = target_pooling(student.pooling, store.fingerprint.pooling)
        self.standardize = student.standardize_targets
        self.device = torch.device(device)
        self._stats = stats

    @property
    def stats(self):
        if self._stats is None:
            self._stats = self.store.target_stats()
        return self._stats

    def __call__(self, raw: torch.Tensor, lengths: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        from pipeline.models.teacher import average_pool

        raw, lengths = average_pool(raw.float(), self.pool, lengths)
        targets = {layer: raw[:, i].to(self.device) for i, layer in enumerate(self.layers)}
        if self.standardize:
            targets = standardised_targets(targets, self.stats)
        return targets, lengths

    def read(self, keys: Sequence[str]) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """:func:`read_targets` then this preparation."""
        return self(*read_targets(self.store, keys))

    def to_teacher_space(self, layer: int, prediction: torch.Tensor, frame_norm: float,
                         teacher_frames: int) -> torch.Tensor:
        """A head's ``(T, width)`` prediction as ``(teacher_frames, width)`` stored-rate teacher states.

        The cosine loss leaves the scale free, so each frame is first scaled to ``frame_norm`` (the mean norm
        of training targets in this space); then the standardisation is undone and each frame is repeated
        ``pool`` times back to the store's frame rate.
        """
        frames = prediction.float() * (frame_norm / prediction.float().norm(dim=-1, keepdim=True).clamp(min=1e-6))
        if self.standardize:
            i = self.stats.layers.index(layer)
            frames = frames * torch.as_tensor(self.stats.std[i], device=frames.device) + \
                torch.as_tensor(self.stats.mean[i], device=frames.device)
        return frames.repeat_interleave(self.pool, dim=0)[:teacher_frames]
