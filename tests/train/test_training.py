"""Training end to end with the tiny random models: Ray Train + DeepSpeed, exact resume, preflight."""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from feature_store import FingerprintMismatch
from pipeline.config import load_config
from pipeline.data.shards import ShardSet
from pipeline.models.patch_embedding import AudioPatchEmbedding
from pipeline.train.checkpoint import latest_checkpoint, list_checkpoints
from pipeline.train.data import TrainingData, TrainingDataError
from pipeline.train.distill import DistillRecipe
from pipeline.train.sampler import PlannedBatch
from pipeline.train.launch import RunExistsError, preflight, prepare_run_dir
from tests.conftest import REPO, fault_seeds, run_aura

pytestmark = pytest.mark.slow


def _metrics(run_dir: Path) -> dict[int, dict[str, float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return {int(r["step"]): {k: float(v) for k, v in r.items() if k.startswith(("loss", "cos"))}
                for r in csv.DictReader(f)}


def _copy_workdir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoints"))
    return dst


def _train_args(workdir: Path, *extra: str) -> list[str]:
    # Half the clips in another speaker's voice and SpecAugment masks on every clip: a resumed run must hear
    # exactly what the uninterrupted one did; a speaker adversary, whose classifier must resume with it; the
    # teacher's stem (frozen: copied from the teacher again) and first two encoder layers, trained, so a resume must
    # restore them over the fresh copy; and a replayed corpus (the same one, under its replay/ names), whose shards
    # are drawn anew each epoch.
    return ["train", "--config", "configs/tiny.yaml", "--set", f"workdir={workdir}", "--set", f"train.replay_from={workdir}",
            "--set", "train.max_steps=12", "--set", "train.checkpoint_every=4", "--set", "train.eval_every=100",
            "--set", "train.speaker_shift=0.5", "--set", "train.spec_freq_masks=2", "--set", "train.spec_time_masks=2",
            "--set", "train.speaker_adversary_weight=0.5", "--set", "student.teacher_stem=true",
            "--set", "student.teacher_blocks=2", "--set", "train.lr_scale_teacher_blocks=0.5", *extra]


def _assert_same_losses(a: dict, b: dict, steps) -> None:
    for step in steps:
        for name, value in a[step].items():
            assert abs(value - b[step][name]) <= 1e-6, f"step {step} {name}: {value} vs {b[step][name]}"


ZERO3 = ("--set", "train.zero_stage=3")


@pytest.fixture(scope="module")
def zero2_full(tiny_workdir, tmp_path_factory) -> Path:
    """The workdir of an uninterrupted 12-step ZeRO-2 run."""
    full = _copy_workdir(tiny_workdir[0], tmp_path_factory.mktemp("zero2") / "full")
    done = run_aura(*_train_args(full))
    assert done.returncode == 0, done.stderr[-3000:]
    return full


@pytest.fixture(scope="module")
def zero2_reference(zero2_full) -> dict:
    """Losses of the uninterrupted ZeRO-2 run (the reference of every ZeRO-2 fault trial)."""
    reference = _metrics(zero2_full / "checkpoints" / "distill")
    assert sorted(reference) == list(range(1, 13))
    return reference


def test_the_speaker_adversary_learns_the_voices_in_training_and_stays_out_of_the_export(zero2_full, tiny_workdir):
    import json

    from safetensors import safe_open

    run = zero2_full / "checkpoints" / "distill"
    voices = json.loads((run / "speaker_voices.json").read_text())
    train = TrainingData(ShardSet(tiny_workdir[0] / "shards"), None, split="train")
    assert voices == sorted({train.rows[k]["speaker"] for k in train.keys()}) and len(voices) >= 2
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(0 <= float(r["acc_Lspeaker"]) <= 1 and float(r["loss_Lspeaker"]) > 0 for r in rows)
    assert all(float(r["grad_norm"]) > 0 for r in rows)  # before clipping (train.grad_clip)
    with open(run / "eval.csv", newline="") as f:
        evals = list(csv.DictReader(f))
    assert all(0 <= float(r["speaker_acc"]) <= 1 and 0 < float(r["speaker_majority"]) <= 1 for r in evals)
    with safe_open(str(run / "export" / "student.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("adversary" in k for k in keys)  # training-only: inference never needs it


@pytest.fixture(scope="module")
def zero3_reference(tiny_workdir, tmp_path_factory) -> dict:
    full = _copy_workdir(tiny_workdir[0], tmp_path_factory.mktemp("zero3") / "full")
    done = run_aura(*_train_args(full, *ZERO3))
    assert done.returncode == 0, done.stderr[-3000:]
    reference = _metrics(full / "checkpoints" / "distill")
    assert reference[12]["loss"] < reference[1]["loss"]
    return reference


@pytest.mark.parametrize("share", ["speaker_shift", "equalizer"])
def test_the_student_hears_shifted_speakers_drawn_per_clip_and_epoch(tiny_workdir, share):
    workdir = tiny_workdir[0]
    recipe = DistillRecipe(load_config(REPO / "configs/tiny.yaml", [f"workdir={workdir}", f"train.{share}=1.0"]),
                           workdir / "checkpoints" / "distill")
    recipe.data = TrainingData(ShardSet(workdir / "shards"), None, split="train")
    keys = recipe.data.keys()[:3]
    own = recipe.data.load(keys).audio
    first = recipe.load_training_batch(PlannedBatch(epoch=0, position=0, keys=keys, shards=[])).audio
    again = recipe.load_training_batch(PlannedBatch(epoch=0, position=5, keys=keys, shards=[])).audio
    later = recipe.load_training_batch(PlannedBatch(epoch=1, position=0, keys=keys, shards=[])).audio
    for o, a, b, c in zip(own, first, again, later):
        assert o.shape == a.shape == c.shape
        assert not torch.equal(o, a) and not torch.equal(a, c)
        assert torch.equal(a, b)
    setattr(recipe.cfg.train, share, 0.0)
    plain = recipe.load_training_batch(PlannedBatch(epoch=0, position=0, keys=keys, shards=[])).audio
    assert all(torch.equal(o, p) for o, p in zip(own, plain))


def test_spec_masks_reach_training_clips_only_drawn_per_clip_and_epoch(tiny_workdir):
    workdir = tiny_workdir[0]
    cfg = load_config(REPO / "configs/tiny.yaml", [f"workdir={workdir}", "train.spec_freq_masks=2",
                                                   "train.spec_time_masks=2", "train.spec_time_share=0.2"])
    recipe = DistillRecipe(cfg, workdir / "checkpoints" / "distill")
    recipe.data = TrainingData(ShardSet(workdir / "shards"), None, split="train")
    # student_mel needs only the student's patch embedding (the front end that turns audio into mel)
    embedding = AudioPatchEmbedding(n_mels=80, llm_width=8, stride=2 * cfg.store.pooling)
    recipe.engine = types.SimpleNamespace(module=types.SimpleNamespace(patch_embedding=embedding))
    keys = recipe.data.keys()[:3]
    plain, lengths = recipe.student_mel(recipe.data.load(keys))  # an evaluation batch: no epoch, no masks

    def heard(epoch, position=0):
        return recipe.student_mel(recipe.load_training_batch(PlannedBatch(epoch=epoch, position=position, keys=keys,
                                                                          shards=[])))[0]

    first, again, later = heard(0), heard(0, position=5), heard(1)
    assert first.shape == plain.shape and torch.equal(first, again)
    assert not torch.equal(first, plain) and not torch.equal(first, later)
    stride = recipe.engine.module.patch_embedding.stride
    for i, tokens in enumerate(lengths.tolist()):
        frames = tokens * stride
        changed = first[i, :, :frames] != plain[i, :, :frames]
        assert 0 < changed.float().mean() < 0.8  # a few bands and stretches, not the whole clip
        assert torch.equal(first[i, :, frames:], plain[i, :, frames:])  # the batch's padding is left alone
    assert torch.equal(recipe.student_mel(recipe.data.load(keys), audio=recipe.data.load(keys).audio)[0], plain)


@pytest.mark.faults("training", "SIGKILL of the whole job (driver + Ray + workers) at a random step, then --resume")
@pytest.mark.parametrize("seed", fault_seeds(in_ci=1))
def test_sigkill_then_resume_reproduces_the_uninterrupted_run_zero2(seed, zero2_reference, tiny_workdir, tmp_path):
    rng = random.Random(seed)
    # checkpoints every 4 steps; the kill lands between checkpoint 4 and the last one (12) with several
    # steps to spare: on a quiet machine a tiny-model step takes well under 0.1 s
    kill_after_step, extra_delay_s = rng.randint(5, 7), rng.uniform(0.0, 0.1)
    killed = _copy_workdir(tiny_workdir[0], tmp_path / "killed")
    run_dir = killed / "checkpoints" / "distill"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *_train_args(killed)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 400
    try:
        while time.time() < deadline:
            if (run_dir / "metrics.csv").exists() and max(_metrics(run_dir), default=0) >= kill_after_step:
                break
            assert proc.poll() is None, "training ended before it could be killed"
            time.sleep(0.05)
        time.sleep(extra_delay_s)  # anywhere in the next step, a checkpoint write included
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, Ray and its workers: nothing shuts down cleanly
        proc.wait()
    resumed_from = latest_checkpoint(run_dir / "checkpoints")
    assert resumed_from is not None
    k = int(resumed_from.name.split("-")[1])
    assert 4 <= k < 12, f"kill landed too late (checkpoint {k})"

    again = run_aura(*_train_args(killed))
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to silently restart
    again = run_aura(*_train_args(killed, "--resume"))
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = _metrics(run_dir)
    assert sorted(resumed) == list(range(1, 13))
    _assert_same_losses(zero2_reference, resumed, range(k + 1, 13))
    assert (run_dir / "export" / "student.safetensors").exists()
    assert len(list_checkpoints(run_dir / "checkpoints")) == 2  # keep_last


@pytest.mark.faults("training", "SIGKILL of one Ray Train worker at a random step (ZeRO-3), automatic restart")
@pytest.mark.parametrize("seed", fault_seeds(in_ci=1))
def test_zero3_trains_and_resumes_after_a_worker_dies(seed, zero3_reference, tiny_workdir, tmp_path):
    rng = random.Random(seed + 100)
    kill_at, rank = rng.randint(2, 11), rng.randint(0, 1)
    # The rank SIGKILLs itself after step `kill_at`; Ray Train restarts the group from the last checkpoint.
    faulty = _copy_workdir(tiny_workdir[0], tmp_path / "faulty")
    env = {"AURA_FAULT_KILL_AT_STEP": str(kill_at), "AURA_FAULT_RANK": str(rank),
           "AURA_FAULT_ONCE_FILE": str(tmp_path / "fired")}
    done = run_aura(*_train_args(faulty, *ZERO3, "--set", "train.max_failures=1"), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "fired").exists()
    last_checkpoint = kill_at // 4 * 4
    _assert_same_losses(zero3_reference, _metrics(faulty / "checkpoints" / "distill"), range(last_checkpoint + 1, 13))


def test_preflight_refuses_a_store_made_for_another_config(tiny_workdir):
    workdir, overrides = tiny_workdir
    cfg = load_config(REPO / "configs/tiny.yaml", [f"workdir={workdir}", "store.codec=int8"])
    with pytest.raises(FingerprintMismatch, match="codec"):
        preflight(cfg, "distill")
    cfg = load_config(REPO / "configs/tiny.yaml", [f"workdir={workdir}", "store.layers=[1, 4]"])
    with pytest.raises(FingerprintMismatch, match="layers"):
        preflight(cfg, "distill")


def test_preflight_refuses_missing_targets(tiny_workdir, tmp_path):
    workdir, _ = tiny_workdir
    copy = _copy_workdir(workdir, tmp_path / "copy")
    shards = ShardSet(copy / "shards")
    rows = shards.manifest_rows()
    ghost = dict(rows[0], key="ghost_sample", split="train")
    shards.write_manifest(pa.Table.from_pylist(rows + [ghost]))
    cfg = load_config(REPO / "configs/tiny.yaml", [f"workdir={copy}"])
    with pytest.raises(TrainingDataError, match="ghost_sample"):
        preflight(cfg, "distill")


def test_existing_checkpoints_need_resume_or_fresh(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step-000004").mkdir(parents=True)
    with pytest.raises(RunExistsError, match="--resume"):
        prepare_run_dir(run_dir, resume=False, fresh=False)
    prepare_run_dir(run_dir, resume=True, fresh=False)
    assert (run_dir / "checkpoints").exists()
    prepare_run_dir(run_dir, resume=False, fresh=True)
    assert not (run_dir / "checkpoints").exists()
