"""Trivial predictors of the teacher's states, the floor every distillation metric is read against.

Whisper's states share a large component: a student that outputs one fixed vector for every frame
already scores a high cosine on raw targets. Two predictors that do not listen, fitted on training
targets (the same space the student is trained in, e.g. standardised and pooled):

* ``constant``: one vector per layer for every frame, the mean direction of the training frames (the
  best constant under the cosine metric);
* ``position_mean``: the mean training frame at each frame position (where in the clip a frame is; the
  silence at the start and the end of a clip is predictable without hearing it).

A student's held-out cosine means something only where it beats both.

    >>> import torch
    >>> targets = {1: torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])}
    >>> ref = ReferencePredictors.fit([(targets, torch.tensor([2, 2]))])
    >>> mask = torch.ones(2, 2, dtype=torch.bool)
    >>> round(float(ref.predict("position_mean", mask)[1][0, 1, 1]), 3)
    1.0
    >>> sorted(ref.kinds)
    ['constant', 'position_mean']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F

from pipeline.train.data import spread_evenly


@dataclass
class ReferencePredictors:
    """``constant[layer]`` is ``(width,)``; ``position_mean[layer]`` is ``(positions, width)``;
    ``frame_norm[layer]`` the mean norm of a training frame (the scale a cosine-trained head leaves free)."""

    constant: dict[int, torch.Tensor]
    position_mean: dict[int, torch.Tensor]
    frame_norm: dict[int, float]
    frames: int = 0
    kinds: tuple[str, ...] = field(default=("constant", "position_mean"))

    @classmethod
    def fit(cls, batches: Iterable[tuple[dict[int, torch.Tensor], torch.Tensor]]) -> "ReferencePredictors":
        """Fit on ``(targets {layer: (B, T, D)}, lengths (B,))`` batches of training targets."""
        unit_sum: dict[int, torch.Tensor] = {}
        norm_sum: dict[int, float] = {}
        pos_sum: dict[int, torch.Tensor] = {}
        pos_count = torch.zeros(0)
        frames = 0
        for targets, lengths in batches:
            width = max(int(lengths.max()), 1)
            mask = torch.arange(width)[None] < lengths[:, None].cpu()
            if pos_count.numel() < width:
                pos_count = F.pad(pos_count, (0, width - pos_count.numel()))
            pos_count[:width] += mask.sum(0).float()
            frames += int(mask.sum())
            for layer, y in targets.items():
                y = y[:, :width].float().cpu() * mask[..., None]
                unit = F.normalize(y, dim=-1) * mask[..., None]
                unit_sum[layer] = unit_sum.get(layer, 0) + unit.sum((0, 1))
                norm_sum[layer] = norm_sum.get(layer, 0.0) + float(y.norm(dim=-1).sum())
                summed = y.sum(0)
                previous = pos_sum.get(layer)
                if previous is None:
                    pos_sum[layer] = summed
                else:
                    grow = max(previous.shape[0], summed.shape[0])
                    pos_sum[layer] = F.pad(previous, (0, 0, 0, grow - previous.shape[0])) + \
                        F.pad(summed, (0, 0, 0, grow - summed.shape[0]))
        if not frames:
            raise ValueError("no target frames to fit the reference predictors on")
        constant = {layer: F.normalize(v, dim=0) for layer, v in unit_sum.items()}
        position = {layer: v / pos_count[: v.shape[0], None].clamp(min=1) for layer, v in pos_sum.items()}
        return cls(constant, position, {layer: v / frames for layer, v in norm_sum.items()}, frames)

    @classmethod
    def fit_on_data(cls, prepare, data, samples: int, batch_size: int = 32) -> "ReferencePredictors":
        """Fit on ``samples`` clips spread evenly over ``data``'s (a :class:`~pipeline.train.data.TrainingData`),
        their stored targets prepared by a :class:`~pipeline.train.targets.TargetPreparer`."""
        chosen = spread_evenly(data.keys(), samples)
        return cls.fit(prepare(*data.read_targets(chosen[i:i + batch_size]))
                       for i in range(0, len(chosen), batch_size))

    def predict(self, kind: str, token_mask: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{layer: (B, T, D)}`` predictions for a batch with ``token_mask`` ``(B, T)``.

        Positions past the longest training clip take the last fitted position's mean.
        """
        batch, length = token_mask.shape
        if kind == "constant":
            return {layer: v.to(token_mask.device).expand(batch, length, -1) for layer, v in self.constant.items()}
        if kind == "position_mean":
            out = {}
            for layer, v in self.position_mean.items():
                index = torch.arange(length).clamp(max=v.shape[0] - 1)
                out[layer] = v[index].to(token_mask.device)[None].expand(batch, -1, -1)
            return out
        raise ValueError(f"unknown reference predictor {kind!r}; use one of {self.kinds}")
