"""Standardised distillation targets: a constant predictor scores 0, the true targets score a zero loss."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from feature_store.stats import TargetStats
from pipeline.models.distillation import distillation_loss
from pipeline.train.targets import standardised_targets
from tests.conftest import run_aura


@pytest.fixture
def whisper_like():
    """Targets with a large shared component (as raw Whisper states have) and per-frame content."""
    rng = np.random.default_rng(0)
    shared = rng.normal(5.0, 1.0, size=16).astype(np.float32)
    y = shared + rng.normal(0, 0.5, size=(4, 30, 16)).astype(np.float32) * rng.uniform(0.2, 2.0, 16).astype(np.float32)
    flat = y.reshape(-1, 16)
    stats = TargetStats([3], flat.mean(0, keepdims=True), flat.std(0, keepdims=True), len(flat), 4, 1)
    return torch.from_numpy(y), stats


def test_the_mean_vector_scores_high_raw_and_zero_standardised(whisper_like):
    y, stats = whisper_like
    mask = torch.ones(y.shape[:2], dtype=torch.bool)
    constant = torch.from_numpy(stats.mean[0]).expand_as(y)
    _, raw = distillation_loss({3: constant}, {3: y}, mask)
    assert raw[3]["cosine"] > 0.9  # why raw cosine says nothing about content
    target = standardised_targets({3: y}, stats)
    zero_pred = standardised_targets({3: constant}, stats)[3]
    _, standardised = distillation_loss({3: zero_pred + 1e-7}, target, mask)
    assert abs(float(standardised[3]["cosine"])) < 0.05


def test_zero_loss_only_for_the_true_targets(whisper_like):
    y, stats = whisper_like
    mask = torch.ones(y.shape[:2], dtype=torch.bool)
    target = standardised_targets({3: y}, stats)
    loss, _ = distillation_loss({3: target[3].clone()}, target, mask)
    assert float(loss) < 1e-6
    shuffled = target[3][:, torch.randperm(y.shape[1])]
    wrong, _ = distillation_loss({3: shuffled}, target, mask)
    assert float(wrong) > 0.5
    np.testing.assert_allclose(target[3].reshape(-1, 16).mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(target[3].reshape(-1, 16).std(0, unbiased=False).numpy(), 1, atol=1e-3)


@pytest.mark.slow
def test_stage1_trains_on_standardised_targets(tiny_workdir, tmp_path):
    import shutil

    workdir = shutil.copytree(tiny_workdir[0], tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    done = run_aura("train", "--config", "configs/tiny.yaml", "--set", f"workdir={workdir}",
                    "--set", "student.standardize_targets=true", "--set", "train.max_steps=4",
                    "--set", "train.eval_every=4", "--set", "train.checkpoint_every=4")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(open(next(workdir.glob("checkpoints/distill/eval.csv")))))
    first = {k: float(v) for k, v in rows[0].items() if k.startswith("cos_L")}
    # at initialisation the heads' outputs are unrelated to the standardised targets: cosine near 0
    assert all(abs(v) < 0.3 for v in first.values()), first


# ------------------------------------------------------------------------ pooling in training


@pytest.mark.parametrize("samples", [320, 321, 16000, 16321, 47999])
@pytest.mark.parametrize("pooling", [2, 3, 4])
def test_pooling_stored_states_gives_what_a_pooled_store_holds(samples, pooling):
    from pipeline.data.mel import teacher_frames
    from pipeline.models.teacher import average_pool

    frames = teacher_frames(samples, 1)
    states = torch.randn(2, frames, 5)
    pooled, _ = average_pool(states, pooling)
    assert pooled.shape[1] == teacher_frames(samples, pooling)
    # a padded batch pools each sample as it would alone
    batch = torch.zeros(2, 2, frames + 7, 5)
    batch[0, :, :frames] = states
    batch_pooled, lengths = average_pool(batch, pooling, torch.tensor([frames, 3]))
    assert lengths.tolist() == [teacher_frames(samples, pooling), -(-3 // pooling)]
    torch.testing.assert_close(batch_pooled[0, :, : pooled.shape[1]], pooled)


def _store(layers=(2, 4), pooling=1, stats=None):
    from types import SimpleNamespace

    return SimpleNamespace(fingerprint=SimpleNamespace(layers=list(layers), pooling=pooling),
                           target_stats=lambda: stats)


def test_target_preparer_pools_then_standardises(whisper_like):
    from pipeline.config import StudentConfig
    from pipeline.train.targets import TargetPreparer, target_pooling

    y, stats = whisper_like  # layer 3, (4, 30, 16)
    prepare = TargetPreparer(_store((3,), 1, stats), StudentConfig(pooling=3, standardize_targets=True))
    targets, lengths = prepare(y[:, None], torch.tensor([30, 30, 29, 10]))
    assert targets[3].shape == (4, 10, 16) and lengths.tolist() == [10, 10, 10, 4]
    expected = standardised_targets({3: y[:1, :3].mean(1, keepdim=True)}, stats)[3]
    torch.testing.assert_close(targets[3][:1, :1], expected)
    with pytest.raises(ValueError, match="multiple of the store's pooling"):
        target_pooling(3, 2)


def test_target_preparer_standardises_with_statistics_given(whisper_like, tmp_path):
    """train.target_stats_from: parts trained on one corpus keep its target space on another corpus's targets, with
    that corpus's statistics from its store or from a target_stats.npz file."""
    from pipeline.config import StudentConfig
    from pipeline.train.targets import TargetPreparer

    y, stats = whisper_like
    own = TargetStats([3], stats.mean + 3.0, stats.std * 2.0, 1, 1, 1)  # the new corpus's own, unlike the first's
    np.savez(tmp_path / "target_stats.npz", mean=stats.mean, std=stats.std, frames=stats.frames, samples=stats.samples,
             shards=stats.shards, layers=np.asarray(stats.layers))
    saved = TargetStats.from_npz(tmp_path / "target_stats.npz")
    prepare = TargetPreparer(_store((3,), 1, own), StudentConfig(pooling=1), stats=saved)
    targets, _ = prepare(y[:1, None], torch.tensor([30]))
    torch.testing.assert_close(targets[3], standardised_targets({3: y[:1]}, stats)[3])
    with pytest.raises(ValueError, match=r"statistics of teacher layers \[3\] for targets of layers \[2, 4\]"):
        TargetPreparer(_store((2, 4), 1, own), StudentConfig(pooling=1), stats=saved)


def test_to_teacher_space_fixes_the_scale_and_undoes_standardising_and_pooling(whisper_like):
    from pipeline.config import StudentConfig
    from pipeline.train.targets import TargetPreparer

    y, stats = whisper_like
    prepare = TargetPreparer(_store((3,), 1, stats), StudentConfig(pooling=2, standardize_targets=True))
    targets, _ = prepare(y[:1, None], torch.tensor([30]))
    prediction = targets[3][0] * torch.rand(15, 1) * 5  # right direction, any per-frame scale
    states = prepare.to_teacher_space(3, prediction, frame_norm=4.0, teacher_frames=29)
    assert states.shape == (29, 16)
    torch.testing.assert_close(states[0], states[1])  # each pooled frame repeated back to the stored rate
    back = standardised_targets({3: states[None]}, stats)[3][0, ::2]
    torch.testing.assert_close(back.norm(dim=-1), torch.full((15,), 4.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.nn.functional.cosine_similarity(back, targets[3][0], dim=-1),
                               torch.ones(15), atol=1e-5, rtol=0)


def test_reference_target_stats_reads_a_stats_file_and_names_a_missing_one(whisper_like, tmp_path):
    from pipeline.config import load_config
    from pipeline.store import reference_target_stats

    _, stats = whisper_like
    assert reference_target_stats(load_config("configs/tiny.yaml")) is None  # the store's own statistics
    path = tmp_path / "target_stats.npz"
    np.savez(path, mean=stats.mean, std=stats.std, frames=stats.frames, samples=stats.samples, shards=stats.shards,
             layers=np.asarray(stats.layers))
    read = reference_target_stats(load_config("configs/tiny.yaml", [f"train.target_stats_from={path}"]))
    assert read.layers == [3] and np.array_equal(read.std, stats.std)
    with pytest.raises(FileNotFoundError, match="train.target_stats_from: no feature store or target_stats.npz at"):
        reference_target_stats(load_config("configs/tiny.yaml", [f"train.target_stats_from={tmp_path / 'gone'}"]))
