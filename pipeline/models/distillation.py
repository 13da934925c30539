"""Layer-wise distillation: heads from the student's hidden states to the teacher's layers, the layer map
and the loss.

Layer numbering: teacher layer ``j`` is Whisper's ``hidden_states[j]`` (0 = embeddings); student layer ``m``
is the *output* of decoder layer ``m`` (1-based), i.e. the LLM's ``hidden_states[m]`` before the final norm.
"""

from __future__ import annotations

import math
from typing import Iterable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class DistillationHead(nn.Module):
    """Student hidden state (LLM width) -> teacher layer space: ``RMSNorm`` + ``Linear``."""

    def __init__(self, llm_width: int, teacher_width: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.RMSNorm(llm_width, eps=eps)
        self.proj = nn.Linear(llm_width, teacher_width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(hidden.to(self.proj.weight.dtype)))


def default_layer_map(teacher_layers: Sequence[int], distill_depth: int) -> dict[int, int]:
    """Teacher layer ``j`` -> student layer ``m(j)``, proportional to depth, the deepest ``j`` at ``distill_depth``.

    ``m(j) = round(j / max(teacher_layers) * distill_depth)``, then nudged so the map is strictly
    increasing and every ``m >= 1`` (student layer 0 would be the patch embedding itself).

    >>> default_layer_map([1, 2, 3, 4], 8)
    {1: 2, 2: 4, 3: 6, 4: 8}
    >>> default_layer_map([0, 2, 4], 6)
    {0: 1, 2: 3, 4: 6}
    """
    layers = sorted(set(int(j) for j in teacher_layers))
    if not layers:
        raise ValueError("no teacher layers to distill")
    if layers[0] < 0:
        raise ValueError(f"teacher layers must be >= 0, got {layers}")
    if len(layers) > distill_depth:
        raise ValueError(f"{len(layers)} teacher layers cannot map to distinct student layers 1..{distill_depth}; "
                         "raise student.distill_depth or store fewer layers")
    deepest = max(layers[-1], 1)
    targets = [int(math.floor(j / deepest * distill_depth + 0.5)) for j in layers]
    targets[-1] = distill_depth
    for i in range(len(targets)):  # up-sweep: >= 1 and strictly increasing
        targets[i] = max(targets[i], 1, targets[i - 1] + 1 if i else 1)
    for i in range(len(targets) - 1, -1, -1):  # down-sweep: stay within depth
        ceiling = distill_depth if i == len(targets) - 1 else targets[i + 1] - 1
        targets[i] = min(targets[i], ceiling)
    return dict(zip(layers, targets))


def validate_layer_map(layer_map: dict[int, int], num_llm_layers: int,
                       teacher_layers: Iterable[int] | None = None) -> dict[int, int]:
    """Check a user-given map (keys available, values in ``1..num_llm_layers``, strictly increasing); sorted copy.

    >>> validate_layer_map({4: 8, 2: 3}, num_llm_layers=8)
    {2: 3, 4: 8}
    """
    if not layer_map:
        raise ValueError("layer map is empty")
    ordered = dict(sorted((int(j), int(m)) for j, m in layer_map.items()))
    if teacher_layers is not None:
        available = set(int(j) for j in teacher_layers)
        missing = [j for j in ordered if j not in available]
        if missing:
            raise ValueError(f"layer map uses teacher layers {missing} that are not among {sorted(available)}")
    bad = {j: m for j, m in ordered.items() if not 1 <= m <= num_llm_layers}
    if bad:
        raise ValueError(f"layer map {bad}: student layers must be in 1..{num_llm_layers} (output of decoder layer m)")
    values = list(ordered.values())
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"layer map {ordered} must be strictly increasing (deeper teacher layer -> deeper student layer)")
    return ordered


def distillation_loss(layer_states: dict[int, torch.Tensor], targets: dict[int, torch.Tensor],
                      token_mask: torch.Tensor, kind: Literal["cosine", "mse"] = "cosine",
                      ) -> tuple[torch.Tensor, dict[int, dict[str, torch.Tensor]]]:
    """Layer-wise distillation loss over the valid audio tokens.

    ``cosine``: per token ``1 - cos(student, teacher)``, averaged over the valid tokens of the batch,
    then over layers. ``mse``: mean squared error per element on the targets as they are. Computed in
    float32. ``per_layer[j]`` holds ``loss`` (with grad) and ``cosine`` (detached mean cosine, always).

    >>> s = {1: torch.randn(2, 3, 4)}
    >>> loss, per = distillation_loss(s, {1: s[1].clone()}, torch.ones(2, 3, dtype=torch.bool))
    >>> abs(loss.item()) < 1e-6, round(per[1]["cosine"].item(), 6)
    (True, 1.0)
    """
    if kind not in ("cosine", "mse"):
        raise ValueError(f"unknown distillation loss {kind!r}; use 'cosine' or 'mse'")
    missing = [j for j in layer_states if j not in targets]
    if missing:
        raise KeyError(f"no targets for teacher layers {missing}")
    mask = token_mask.bool()
    count = mask.sum().clamp(min=1)
    weights = mask.float()
    per_layer: dict[int, dict[str, torch.Tensor]] = {}
    losses = []
    for j, student in layer_states.items():
        target = targets[j].to(device=student.device)
        if target.shape != student.shape:
            raise ValueError(f"teacher layer {j}: target shape {tuple(target.shape)} != student {tuple(student.shape)}")
        student32, target32 = student.float(), target.float()
        # Rounding can put cos a hair outside [-1, 1]; clamp so the loss is never negative.
        cosine = F.cosine_similarity(student32, target32, dim=-1, eps=1e-8).clamp(-1.0, 1.0)  # (B, T)
        mean_cosine = (cosine * weights).sum() / count
        if kind == "cosine":
            loss = ((1.0 - cosine) * weights).sum() / count
        else:
            loss = (((student32 - target32) ** 2).mean(-1) * weights).sum() / count
        per_layer[j] = {"loss": loss, "cosine": mean_cosine.detach()}
        losses.append(loss)
    return torch.stack(losses).mean(), per_layer
