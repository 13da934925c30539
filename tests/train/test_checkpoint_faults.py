"""A checkpoint write killed halfway leaves the previous checkpoint usable (real DeepSpeed, one process).

Each phase of ``save_checkpoint`` is interrupted by SIGKILL in a child process (see
``tests/train/checkpoint_child.py``); a second process then resumes: it must load the newest
checkpoint that verifies, with exactly the weights saved then, and save the next one cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from pipeline.train.checkpoint import CheckpointError, list_checkpoints, verify_checkpoint
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _child(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MASTER_PORT": str(29700 + os.getpid() % 200)}
    return subprocess.run([sys.executable, "-m", "tests.train.checkpoint_child", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.faults("training", "SIGKILL halfway through a checkpoint write")
@pytest.mark.parametrize("phase, usable_step", [
    ("ds-write", 1), ("rank-state", 1), ("marker", 1), ("rename", 1), ("rotation", 2),
])
def test_killed_checkpoint_write_leaves_the_previous_one_usable(phase, usable_step, tmp_path):
    root = tmp_path / "checkpoints"
    killed = _child("save", str(root), phase)
    assert killed.returncode == -signal.SIGKILL, f"{phase} was not interrupted:\n{killed.stdout}\n{killed.stderr[-3000:]}"
    expected = json.loads((tmp_path / "expected.json").read_text())

    resumed = _child("resume", str(root))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    loaded = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert loaded["step"] == usable_step
    assert loaded["digest"] == expected[str(usable_step)]  # exactly the weights saved at that step
    assert loaded["rank_state"]["sampler"] == {"position": usable_step}

    # The interrupted write left nothing behind that a later save or reader could trip over.
    assert sorted(p.name for p in root.iterdir()) == [f"step-{s:06d}" for s in (usable_step, usable_step + 1)]
    for path in list_checkpoints(root):
        verify_checkpoint(path)


@pytest.mark.faults("training", "newest checkpoint truncated after it was written")
def test_a_damaged_newest_checkpoint_is_skipped_on_resume(tmp_path):
    root = tmp_path / "checkpoints"
    done = _child("save", str(root), "none")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = json.loads((tmp_path / "expected.json").read_text())
    newest = list_checkpoints(root)[-1]
    victim = max((p for p in newest.rglob("*") if p.is_file() and p.suffix == ".pt"), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        verify_checkpoint(newest)

    resumed = _child("resume", str(root))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipping damaged checkpoint" in resumed.stderr
    loaded = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (loaded["step"], loaded["digest"]) == (1, expected["1"])
    for path in list_checkpoints(root):  # the damaged step 2 was replaced by the resumed run's step 2
        verify_checkpoint(path)
