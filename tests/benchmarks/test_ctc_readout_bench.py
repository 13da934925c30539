"""benchmarks.ctc_readout_bench's greedy-head comparison on the released student (the real path): both ways read the
same ids from a padded batch, and every number it reports is there."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from benchmarks.ctc_readout_bench import greedy_head_cost
from pipeline.infer import EncoderFreeModel
from pipeline.released import RELEASE_DIR, released_examples, released_student

LLM = "bundled:smollm2-135m-instruct"


@pytest.mark.skipif(released_student(LLM) is None, reason="no released student shipped")
def test_greedy_head_cost_reads_the_same_ids_both_ways_on_a_padded_batch():
    model = EncoderFreeModel.from_export(LLM, RELEASE_DIR / "student.safetensors")
    clips = [sf.read(row["path"], dtype="float32")[0] for row in released_examples()[:3]]
    clips[1] = np.resize(clips[1], 3 * len(clips[1]))  # a longer clip, so the others are padded
    cost = greedy_head_cost(model, {"batch": clips}, reps=1)["batch"]
    assert cost["same_ids"]
    assert cost["clips"] == 3
    for way in ("best labels", "whole vocabulary"):
        assert cost["median_ms"][way] > 0 and cost["peak_mb"][way] >= 0
