"""A one-process DeepSpeed run for the checkpoint fault tests (run as ``python -m tests.train.checkpoint_child``).

``save ROOT PHASE``: train a small model for 2 steps, saving a checkpoint after each; during the
second save, SIGKILL this process at ``PHASE``:

* ``ds-write``    halfway through a file DeepSpeed is writing (half its bytes on disk);
* ``rank-state``  after DeepSpeed's files, before this rank's sampler/RNG state;
* ``marker``      halfway through writing ``COMPLETE.json``;
* ``rename``      everything written, before the folder is renamed into place;
* ``rotation``    after the rename, while old checkpoints are being deleted;
* ``none``        not killed: both checkpoints are kept.

Before dying it writes ``ROOT/../expected.json``: a digest of the weights after each step.

``resume ROOT``: build the same model, load the newest checkpoint that verifies, print one JSON
line (the step and the digest of the loaded weights), then train one more step and save it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
for key, value in {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
    os.environ.setdefault(key, value)

import torch  # noqa: E402

from pipeline.train import checkpoint as ckpt  # noqa: E402


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _engine():
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    config = {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 1,
              "zero_optimization": {"stage": 2}, "zero_allow_untested_optimizer": True, "steps_per_print": 10**9}
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine


def _digest(engine) -> str:
    h = hashlib.sha256()
    for name, p in sorted(engine.module.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().numpy().tobytes())
    return h.hexdigest()


def _step(engine, step: int) -> None:
    gen = torch.Generator().manual_seed(step)
    x, y = torch.randn(4, 16, generator=gen), torch.randn(4, 4, generator=gen)
    loss = torch.nn.functional.mse_loss(engine(x), y)
    engine.backward(loss)
    engine.step()


def _arm(phase: str) -> None:
    """Patch the one call at which ``phase`` dies (only the second save reaches it)."""
    if phase == "ds-write":
        real_save = torch.save

        def half_then_die(obj, f, *args, **kwargs):
            import io

            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            with open(f, "wb") as out:
                out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            _die()

        torch.save = half_then_die
    elif phase == "rank-state":
        ckpt.save_file = lambda *a, **k: _die()
    elif phase == "marker":
        real_dump = json.dump

        def half_marker(obj, f, *args, **kwargs):
            text = json.dumps(obj, *args, **kwargs)
            f.write(text[: len(text) // 2])
            f.flush()
            _die()

        ckpt.json.dump = half_marker
    elif phase == "rename":
        ckpt.os.replace = lambda *a, **k: _die()
    elif phase == "rotation":
        ckpt.shutil.rmtree = lambda *a, **k: _die()
    elif phase != "none":
        raise SystemExit(f"unknown phase {phase}")


def save(root: Path, phase: str) -> None:
    engine = _engine()
    expected: dict[str, str] = {}
    for step in (1, 2):
        _step(engine, step)
        expected[str(step)] = _digest(engine)
        (root.parent / "expected.json").write_text(json.dumps(expected))
        if step == 2:
            _arm(phase)
        keep_last = 1 if phase == "rotation" else 2  # rotation needs an old checkpoint to delete
        ckpt.save_checkpoint(engine, root, step, {"sampler": {"position": step}}, keep_last=keep_last)
    print("second save was not interrupted", flush=True)


def resume(root: Path) -> None:
    engine = _engine()
    found = ckpt.latest_checkpoint(root)
    if found is None:
        raise SystemExit("no usable checkpoint")
    state = ckpt.load_checkpoint(engine, found, rank=0)
    step = ckpt.checkpoint_step(found)
    print(json.dumps({"step": step, "digest": _digest(engine), "rank_state": state}), flush=True)
    _step(engine, step + 1)
    ckpt.save_checkpoint(engine, root, step + 1, {"sampler": {"position": step + 1}}, keep_last=2)


if __name__ == "__main__":
    mode, root = sys.argv[1], Path(sys.argv[2])
    save(root, sys.argv[3]) if mode == "save" else resume(root)
