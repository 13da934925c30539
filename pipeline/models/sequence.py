"""Sequences and masks: where audio tokens sit among the prompt's text tokens, and what attends to what.

Attention (:func:`build_attention_mask`): causal everywhere, plus bidirectional inside each contiguous run
of audio tokens of a sample; padding keys are never attended to. :func:`layout_speech_batch` is the one
layout of a stage-2 / inference batch (prompt, audio, tail, answer), with labels only on the answer.
"""

from __future__ import annotations

from typing import Iterable, Literal, Sequence

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # label of positions without a loss (prompt, audio, padding)


def audio_block_ids(audio_mask: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` id of the contiguous audio run each position belongs to (1, 2, ...); 0 for text."""
    audio = audio_mask.bool()
    starts = audio & ~F.pad(audio, (1, 0))[:, :-1]
    return torch.cumsum(starts.long(), dim=1) * audio.long()


def build_attention_mask(attention_mask: torch.Tensor, audio_mask: torch.Tensor | None = None,
                         bidirectional_audio: bool = True, dtype: torch.dtype = torch.float32,
                         implementation: str = "sdpa") -> torch.Tensor:
    """The 4D mask ``(B, 1, L, L)`` for a sequence mixing text and audio tokens.

    Query ``q`` may attend to key ``k`` when ``k`` is a real token (``attention_mask[b, k]``) and either
    ``k <= q`` (causal) or both are audio tokens of the same contiguous audio run (bidirectional).
    A padding query attends only to itself, so no row is empty (an all-masked row is NaN in sdpa).

    ``implementation`` is the LLM's ``config._attn_implementation``: ``"sdpa"`` gets a boolean mask
    (True = attend), ``"eager"`` an additive float mask (0 or ``finfo(dtype).min``), which is what
    transformers' own mask builders give these kernels. transformers passes a 4D mask through
    unchanged, so the mask also works for ``llm(inputs_embeds=..., attention_mask=mask)``.
    """
    if implementation not in ("sdpa", "eager"):
        raise ValueError(f"attention implementation {implementation!r} is not supported by the AuRA mask; "
                         "load the LLM with attn_implementation='sdpa' or 'eager'")
    real = attention_mask.bool()
    batch, length = real.shape
    idx = torch.arange(length, device=real.device)
    allowed = (idx[None, :] <= idx[:, None])[None].expand(batch, length, length)  # (B, q, k) causal
    if audio_mask is not None and bidirectional_audio:
        blocks = audio_block_ids(audio_mask)
        same_block = (blocks[:, :, None] == blocks[:, None, :]) & (blocks[:, :, None] > 0)
        allowed = allowed | same_block
    allowed = allowed & real[:, None, :] & real[:, :, None]
    allowed = allowed | (torch.eye(length, dtype=torch.bool, device=real.device)[None] & ~real[:, :, None])
    allowed = allowed[:, None]  # (B, 1, q, k): one mask for all heads
    if implementation == "sdpa":
        return allowed
    return torch.zeros((), dtype=dtype, device=real.device).masked_fill(~allowed, torch.finfo(dtype).min)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting real tokens only (0 for left padding), so left- and right-padded batches agree."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def run_decoder_layers(decoder, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                       audio_mask: torch.Tensor | None, bidirectional_audio: bool, attn_implementation: str,
                       upto: int | None = None, collect: Iterable[int] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Decoder layers ``1..upto`` (all by default) of a Llama-style ``decoder`` (``.layers``, ``.rotary_emb``) run by
    hand with the AuRA mask: the stages that read early layers (distillation, the CTC read-out) stop there.

    Returns ``(hidden after layer upto (no final norm), {m: output of decoder layer m for m in collect})``.
    """
    upto = len(decoder.layers) if upto is None else upto
    if not 1 <= upto <= len(decoder.layers):
        raise ValueError(f"upto={upto} outside 1..{len(decoder.layers)}")
    wanted = {m for m in collect if m <= upto}
    mask = build_attention_mask(attention_mask, audio_mask, bidirectional_audio, inputs_embeds.dtype,
                                attn_implementation)
    position_ids = position_ids_from_mask(attention_mask)
    position_embeddings = decoder.rotary_emb(inputs_embeds, position_ids=position_ids)
    hidden = inputs_embeds
    states: dict[int, torch.Tensor] = {}
    for index, layer in enumerate(decoder.layers[:upto], start=1):
        hidden = layer(hidden, attention_mask=mask, position_ids=position_ids, position_embeddings=position_embeddings)
        if isinstance(hidden, tuple):  # older transformers returned (hidden, ...)
            hidden = hidden[0]
        if index in wanted:
            states[index] = hidden
    return hidden, states


def layout_speech_batch(before_audio: Sequence[Sequence[int]], token_lengths: Sequence[int] | torch.Tensor,
                        after_audio: Sequence[Sequence[int]] | None = None,
                        targets: Sequence[Sequence[int]] | None = None, pad_id: int = 0,
                        padding_side: Literal["right", "left"] = "right") -> dict[str, torch.Tensor]:
    """Lay out ``[before_audio][audio x token_lengths][after_audio][targets]`` per sample, padded to one length.

    Returns ``input_ids`` (audio positions hold ``pad_id``; :meth:`AuraStudent.embed_sequence` replaces
    them), ``attention_mask``, ``audio_mask`` and, when ``targets`` are given, ``labels`` (the target ids,
    ``-100`` elsewhere). Use ``padding_side="left"`` for generation prompts.

    >>> b = layout_speech_batch([[1, 2]], [3], after_audio=[[4]], targets=[[5, 6]], pad_id=0)
    >>> b["input_ids"].tolist(), b["audio_mask"].int().tolist(), b["labels"].tolist()
    ([[1, 2, 0, 0, 0, 4, 5, 6]], [[0, 0, 1, 1, 1, 0, 0, 0]], [[-100, -100, -100, -100, -100, -100, 5, 6]])
    """
    lengths = [int(n) for n in (token_lengths.tolist() if torch.is_tensor(token_lengths) else token_lengths)]
    size = len(before_audio)
    after_audio = after_audio if after_audio is not None else [[] for _ in range(size)]
    if not len(lengths) == len(after_audio) == size or (targets is not None and len(targets) != size):
        raise ValueError("before_audio, token_lengths, after_audio and targets must have one entry per sample")
    rows = []
    for i in range(size):
        answer = list(targets[i]) if targets is not None else []
        ids = list(before_audio[i]) + [pad_id] * lengths[i] + list(after_audio[i]) + answer
        audio = [0] * len(before_audio[i]) + [1] * lengths[i] + [0] * (len(after_audio[i]) + len(answer))
        labels = [IGNORE_INDEX] * (len(ids) - len(answer)) + answer
        rows.append((ids, audio, labels))
    width = max(len(r[0]) for r in rows)
    out = {k: torch.full((size, width), v, dtype=torch.long)
           for k, v in (("input_ids", pad_id), ("attention_mask", 0), ("audio_mask", 0), ("labels", IGNORE_INDEX))}
    for i, (ids, audio, labels) in enumerate(rows):
        span = slice(0, len(ids)) if padding_side == "right" else slice(width - len(ids), width)
        out["input_ids"][i, span] = torch.tensor(ids, dtype=torch.long)
        out["attention_mask"][i, span] = 1
        out["audio_mask"][i, span] = torch.tensor(audio, dtype=torch.long)
        out["labels"][i, span] = torch.tensor(labels, dtype=torch.long)
    out["audio_mask"] = out["audio_mask"].bool()
    if targets is None:
        del out["labels"]
    return out
