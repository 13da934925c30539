"""A speaker adversary: a voice classifier on the student's audio states behind a gradient reversal.

The student reads the voices it trained on far better than a new one (benchmarks/results/kokoro_voices/: a
voice it never heard reads like the held-out one), so its audio states carry who speaks beside what is said.
Domain-adversarial training (Ganin & Lempitsky, 2015) asks for states that do not: a small classifier learns to
tell the training voices apart from every audio token of one student layer, and the student gets the reversed
gradient of that classifier, scaled by ``train.speaker_adversary_weight``. The classifier lives only in training
(in checkpoints, never in exports); its accuracy on the watched split is how much voice the states still carry.

    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <...>
    >>> adversary = SpeakerAdversary(width=8, num_speakers=3)
    >>> states = torch.randn(2, 5, 8, requires_grad=True)
    >>> mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    >>> loss, accuracy = adversary(states, mask, torch.tensor([0, 2]), reversal=0.5)
    >>> loss.backward()
    >>> classifier_grad = torch.autograd.grad(adversary(states, mask, torch.tensor([0, 2]), 1.0)[0],
    ...                                        states)[0]  # reversal 1: the classifier's gradient, negated
    >>> torch.allclose(states.grad, 0.5 * classifier_grad)   # 0.5 x the (reversed) gradient reached the states
    True
    >>> float(states.grad[1, 3:].abs().sum())                # padding gets none
    0.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


class SpeakerAdversary(nn.Module):
    """Per audio token: ``RMSNorm -> Linear(width, hidden) -> GELU -> Linear(hidden, num_speakers)``, fed the
    states through :class:`GradientReversal`. The classifier minimises its cross-entropy; the states upstream
    get ``-reversal`` times its gradient, i.e. they are trained to make the voice harder to tell."""

    def __init__(self, width: int, num_speakers: int, hidden: int = 256):
        super().__init__()
        if num_speakers < 2:
            raise ValueError(f"a speaker adversary needs at least two training voices, got {num_speakers}")
        self.net = nn.Sequential(nn.RMSNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, num_speakers))

    def forward(self, states: torch.Tensor, token_mask: torch.Tensor, speaker_ids: torch.Tensor,
                reversal: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cross-entropy, accuracy)`` over the audio tokens of ``states`` ``(B, T, width)`` under ``token_mask``
        ``(B, T)``, each clip's tokens labelled ``speaker_ids[b]``; a clip labelled ``-100`` (a voice the classifier
        has no class for) is left out of both."""
        labels = speaker_ids.to(states.device)[:, None].expand_as(token_mask)
        scored = token_mask & (labels >= 0)
        logits = self.net(GradientReversal.apply(states[scored], reversal)).float()
        if logits.shape[0] == 0:
            zero = states.sum() * 0.0
            return zero, zero.detach()
        target = labels[scored]
        return F.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean().detach()
