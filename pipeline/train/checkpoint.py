"""Atomic, verified, rotating training checkpoints around DeepSpeed's ``save_checkpoint``.

Layout of a checkpoint root::

    step-000050/            a complete checkpoint (renamed into place last)
        ds/                 DeepSpeed: trainable weights, optimizer, scheduler (frozen base excluded)
        rank-0.json         per-rank training state: sampler position, step
        rank-0.rng.safetensors
        COMPLETE.json       sha256 of every file above, written last
    .tmp-step-000100/       being written; ignored by readers, removed by the next save

A save killed at any point leaves either a ``.tmp-*`` folder (ignored) or a complete checkpoint, so
the previous checkpoint stays usable. :func:`latest_checkpoint` verifies checksums and falls back to
an older checkpoint when the newest is damaged.

Usage (inside a DeepSpeed worker; every rank calls it)::

    >>> save_checkpoint(engine, root, step=50, rank_state={"sampler": ...}, keep_last=2)   # doctest: +SKIP
    >>> found = latest_checkpoint(root)                                                    # doctest: +SKIP
    >>> rank_state = load_checkpoint(engine, found, rank)                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from pipeline.fs import file_sha256, fsync_dir

log = logging.getLogger(__name__)

STEP_DIR = re.compile(r"^step-(\d{6,})$")
MARKER = "COMPLETE.json"
DS_TAG = "ds"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or damaged."""


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete-looking checkpoints (a marker present), oldest first; not yet verified."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def verify_checkpoint(path: str | Path) -> None:
    """Raise :class:`CheckpointError` unless every file listed in the marker has its recorded sha256."""
    path = Path(path)
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable {MARKER} ({exc})") from None
    for rel, digest in marker["files"].items():
        file = path / rel
        if not file.is_file():
            raise CheckpointError(f"{path}: missing file {rel}")
        if file_sha256(file) != digest:
            raise CheckpointError(f"{path}: checksum mismatch in {rel}")


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest checkpoint that verifies; damaged newer ones are skipped with a warning."""
    for path in reversed(list_checkpoints(root)):
        try:
            verify_checkpoint(path)
            return path
        except CheckpointError as exc:
            log.warning("skipping damaged checkpoint: %s", exc)
    return None


def checkpoint_step(path: Path) -> int:
    return int(json.loads((path / MARKER).read_text())["step"])


def save_checkpoint(engine, root: str | Path, step: int, rank_state: dict[str, Any], keep_last: int,
                    extra_files: dict[str, bytes] | None = None) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint path."""
    root = Path(root)
    rank = _rank()
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-step-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():  # a re-run reaching a step that was saved before: replace it
            shutil.rmtree(final)
        tmp.mkdir()
    _barrier()
    engine.save_checkpoint(str(tmp), tag=DS_TAG, client_state={"step": step}, exclude_frozen_parameters=True)
    (tmp / f"rank-{rank}.json").write_text(json.dumps({"step": step, **rank_state}, sort_keys=True))
    save_file(rng_state(), str(tmp / f"rank-{rank}.rng.safetensors"))
    if rank == 0:
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
    _barrier()
    if rank == 0:
        files = {
            str(p.relative_to(tmp)): file_sha256(p)
            for p in sorted(tmp.rglob("*"))
            if p.is_file() and p.name != MARKER
        }
        marker = tmp / MARKER
        with open(marker, "w") as f:
            json.dump({"step": step, "files": files}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(root)
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def load_checkpoint(engine, path: str | Path, rank: int) -> dict[str, Any]:
    """Restore engine (weights, optimizer, scheduler) and this rank's RNG; returns its rank state."""
    path = Path(path)
    load_path, _ = engine.load_checkpoint(
        str(path), tag=DS_TAG, load_module_strict=False, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if load_path is None:
        raise CheckpointError(f"{path}: DeepSpeed could not load the checkpoint")
    state_file = path / f"rank-{rank}.json"
    if not state_file.exists():
        raise CheckpointError(f"{path}: no state for rank {rank} (was the run saved with a different number of workers?)")
    set_rng_state(load_file(str(path / f"rank-{rank}.rng.safetensors")))
    return json.loads(state_file.read_text())
