"""Where and how a model runs: device and dtype resolution, the attention kernel the AuRA mask needs, and
the frozen LLM the baselines share."""

from __future__ import annotations

import contextlib
import logging
import os

import torch
from torch import nn

from pipeline.config import AuraConfig

logger = logging.getLogger(__name__)

#: Attention kernels the AuRA mask can be handed to (see :func:`~pipeline.models.sequence.build_attention_mask`).
SUPPORTED_ATTENTION = ("sdpa", "eager")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: the first GPU when there is one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Run the block with ``count`` torch threads (None: every core this process may use), then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or len(os.sched_getaffinity(0)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously), so that a clock read after it is honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"``: bfloat16 on a GPU that supports it, float32 otherwise; or a name like ``"float16"``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    return resolved


def ensure_mask_attention(llm: nn.Module) -> None:
    """The AuRA mask is a 4D tensor that only the sdpa and eager kernels take; switch others to sdpa."""
    impl = llm.config._attn_implementation
    if impl not in SUPPORTED_ATTENTION:
        logger.debug("attention %r cannot take the AuRA 4D mask; switching the LLM to sdpa", impl)
        llm.set_attn_implementation("sdpa")


def load_frozen_llm(cfg: AuraConfig, device=None, dtype=None):
    """The config's LLM on ``device`` in ``dtype``, every weight frozen, in eval mode: ``(llm, tokenizer)``."""
    from pipeline.models.sources import load_llm

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    llm, tokenizer = load_llm(cfg.models.llm, cfg.models.cache_dir, dtype=dtype,
                              trust_remote_code=cfg.models.trust_remote_code)
    ensure_mask_attention(llm)
    llm.to(device)
    for p in llm.parameters():
        p.requires_grad_(False)
    return llm.eval(), tokenizer
