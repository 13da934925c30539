"""An auxiliary CTC head: the student's audio states spelled in the LLM's own vocabulary.

Layer-wise distillation asks the student's audio states to resemble Whisper's; nothing in it asks them to
carry words in a form the LLM reads. This head scores the audio states of one student layer against the
transcript's LLM tokens with CTC (Graves et al., 2006), through the LLM's own (frozen) output embedding:

    logits(frame) = [ blank(x), lm_head(x) ],   x = proj(norm(hidden))

so the only new weights are an ``RMSNorm``, a width x width ``Linear`` and a blank row (a third of a
million parameters for SmolLM2-135M), and a state scores a token by its dot product with that token's
embedding: audio states are pulled towards the token embeddings of what was said. Its greedy decoding is
also a way to judge stage 1 *in words*, cheaply (no LLM layer above the CTC layer runs).

Index 0 of the CTC vocabulary is the blank; LLM token ``v`` is index ``v + 1``.

    >>> import torch
    >>> log_probs = torch.full((1, 5, 4), -10.0)
    >>> for t, c in enumerate([1, 1, 0, 3, 0]):   # "a a <blank> c <blank>"
    ...     log_probs[0, t, c] = 0.0
    >>> ctc_greedy_ids(log_probs, torch.tensor([5]))   # LLM token ids: 1 - 1 and 3 - 1
    [[0, 2]]
    >>> float(ctc_token_loss(log_probs, torch.tensor([5]), [[0, 2]])) < 1e-3
    True
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

CTC_BLANK = 0


class TokenCTCHead(nn.Module):
    """Hidden states ``(..., width)`` -> CTC log-probabilities ``(..., 1 + vocab)`` through the LLM's output
    embedding ``lm_head`` (passed at call time: it is the LLM's, frozen, and never saved with this head)."""

    def __init__(self, llm_width: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.RMSNorm(llm_width, eps=eps)
        self.proj = nn.Linear(llm_width, llm_width)
        self.blank = nn.Linear(llm_width, 1)
        # Start as the identity map so that the first steps read the states through the LLM's own embedding.
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(llm_width))
            self.proj.bias.zero_()

    def forward(self, hidden: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
        x = self.proj(self.norm(hidden.to(self.proj.weight.dtype)))
        # Calling the lm_head module (not reading its weight) keeps DeepSpeed ZeRO-3's gather hooks working.
        logits = torch.cat([self.blank(x), lm_head(x)], dim=-1)
        return F.log_softmax(logits.float(), dim=-1)


def ctc_token_loss(log_probs: torch.Tensor, lengths: torch.Tensor, token_ids: Sequence[Sequence[int]],
                   batch_alphabet: bool | None = None) -> torch.Tensor:
    """CTC loss of ``(B, T, 1 + vocab)`` log-probabilities against each sample's LLM token ids, per target
    token (``reduction="mean"``: each sample's loss over its token count, averaged over the batch).

    A sample whose transcript cannot fit its frames (more tokens than CTC can place) contributes 0 rather
    than infinity (``zero_infinity``); samples with no tokens are left out.

    ``batch_alphabet`` (default: on CUDA): CTC reads only the blank's and the transcripts' columns, so it runs on
    those (a batch uses a few hundred of SmolLM2's 49,153) plus one column holding the rest of each frame's
    probability mass. The loss and the gradients are the same as on the whole vocabulary (PyTorch's CTC gradient
    assumes the columns sum to one per frame, hence the rest column). On an H200 the whole-vocabulary CTC kernel
    was 58 % of a stage-1 step's GPU time (benchmarks/results/train_floor/); on CPU it is cheap and the extra
    pass for the rest column costs more than it saves, so CPU keeps the whole vocabulary.

    >>> g = torch.Generator().manual_seed(0)
    >>> logits = torch.randn(2, 6, 30, generator=g, dtype=torch.float64, requires_grad=True)
    >>> lengths, ids = torch.tensor([6, 5]), [[3, 3, 7], [12]]
    >>> full = ctc_token_loss(logits.log_softmax(-1), lengths, ids, batch_alphabet=False)
    >>> part = ctc_token_loss(logits.log_softmax(-1), lengths, ids)
    >>> grads = [torch.autograd.grad(loss, logits)[0] for loss in (full, part)]
    >>> bool(torch.allclose(full, part)), bool(torch.allclose(*grads))
    (True, True)
    """
    keep = [i for i, ids in enumerate(token_ids) if len(ids)]
    if not keep:
        return log_probs.sum() * 0.0
    device = log_probs.device
    index = torch.tensor(keep, device=device)
    log_probs = log_probs.index_select(0, index)
    labels = [t + 1 for i in keep for t in token_ids[i]]  # CTC classes: blank 0, token v -> v + 1
    if batch_alphabet if batch_alphabet is not None else device.type == "cuda":
        used = sorted(set(labels))
        columns = torch.tensor([CTC_BLANK, *used], device=device)
        classes = {c: j + 1 for j, c in enumerate(used)}
        labels = [classes[c] for c in labels]
        picked = log_probs.index_select(-1, columns)
        if len(columns) < log_probs.shape[-1]:
            rest_mass = log_probs.index_fill(-1, columns, float("-inf")).logsumexp(-1, keepdim=True)
            picked = torch.cat([picked, rest_mass], dim=-1)
        log_probs = picked
    targets = torch.tensor(labels, dtype=torch.long, device=device)
    target_lengths = torch.tensor([len(token_ids[i]) for i in keep], dtype=torch.long, device=device)
    return F.ctc_loss(log_probs.transpose(0, 1), targets, lengths.to(device).index_select(0, index), target_lengths,
                      blank=CTC_BLANK, reduction="mean", zero_infinity=True)


def ctc_greedy_ids(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path per sample: argmax per frame, repeats merged, blanks dropped; LLM token ids."""
    best = log_probs.argmax(-1).cpu()
    out = []
    for b, length in enumerate(lengths.tolist()):
        path = torch.unique_consecutive(best[b, :length]).tolist()
        out.append([c - 1 for c in path if c != CTC_BLANK])
    return out
