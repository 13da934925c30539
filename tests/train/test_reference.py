"""The trivial predictors distillation metrics are read against: a constant and the mean per position."""

from __future__ import annotations

import pytest
import torch

from pipeline.models.distillation import distillation_loss
from pipeline.train.reference import ReferencePredictors


def _clips(count: int, seed: int):
    """Standardised-like targets: a component that depends on the frame position only (silence at the
    edges of a clip), plus per-clip content a predictor that does not listen cannot know."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, 12, (count,), generator=gen)
    position = torch.randn(12, 8, generator=torch.Generator().manual_seed(99))
    y = position[None] + 1.5 * torch.randn(count, 12, 8, generator=gen)
    mask = torch.arange(12)[None] < lengths[:, None]
    return {1: y * mask[..., None]}, lengths, mask


def test_reference_predictors_score_what_position_alone_explains():
    targets, lengths, _ = _clips(400, seed=0)
    ref = ReferencePredictors.fit([(targets, lengths)])
    test_targets, _, mask = _clips(100, seed=1)
    scores = {kind: float(distillation_loss(ref.predict(kind, mask), test_targets, mask)[1][1]["cosine"])
              for kind in ref.kinds}
    _, truth = distillation_loss(test_targets, test_targets, mask)
    assert scores["position_mean"] > scores["constant"] + 0.2  # position carries signal here
    assert scores["position_mean"] < float(truth[1]["cosine"]) - 0.2  # but not the content
    assert ref.frames == int(lengths.sum()) and ref.frame_norm[1] > 0


def test_a_constant_scores_near_zero_on_zero_mean_targets():
    gen = torch.Generator().manual_seed(3)
    targets = {2: torch.randn(64, 10, 16, generator=gen)}
    lengths = torch.full((64,), 10)
    ref = ReferencePredictors.fit([(targets, lengths)])
    mask = torch.ones(64, 10, dtype=torch.bool)
    _, per = distillation_loss(ref.predict("constant", mask), {2: torch.randn(64, 10, 16, generator=gen)}, mask)
    assert abs(float(per[2]["cosine"])) < 0.05


def test_positions_past_the_longest_training_clip_and_errors():
    ref = ReferencePredictors.fit([({1: torch.ones(1, 3, 4)}, torch.tensor([3]))])
    assert ref.predict("position_mean", torch.ones(2, 6, dtype=torch.bool))[1].shape == (2, 6, 4)
    with pytest.raises(ValueError, match="unknown reference predictor"):
        ref.predict("median", torch.ones(1, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="no target frames"):
        ReferencePredictors.fit([])
