"""The training-floor benchmark: its model is the released student's shape, and its floor counts the step's FLOPs."""

import json

import pytest
import torch

from benchmarks import train_floor


def test_the_shape_and_prompt_lengths_are_the_bundled_ones():
    from transformers import AutoConfig, AutoTokenizer

    from pipeline.models.sources import resolve_model_dir
    from pipeline.prompts import instruction_for, prompt_ids

    path = resolve_model_dir("bundled:smollm2-135m-instruct")
    config = AutoConfig.from_pretrained(path)
    assert {k: getattr(config, k) for k in train_floor.LLM_SHAPE} == train_floor.LLM_SHAPE
    before, after = prompt_ids(AutoTokenizer.from_pretrained(path), instruction_for("transcribe"))
    assert (len(before), len(after)) == (train_floor.PREFIX_TOKENS, train_floor.AFTER_AUDIO_TOKENS)


def test_both_stages_run_and_report_their_floor(tmp_path):
    # Whether the floor is under the step is the benchmark's finding on a quiet machine, not asserted here: a CI
    # neighbour can halve the measured matmul rate. The FLOP count under the floor is checked exactly below.
    train_floor.main(["--weights", "random", "--batch", "2", "--steps", "1", "--threads", "1",
                      "--ctc-alphabet", "full,batch", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "train_floor.json").read_text())["rows"]
    assert [(r["stage"], r["ctc"]) for r in rows] == [("stage1", "full"), ("stage1", "batch"), ("stage2", "full"),
                                                      ("stage2", "batch")]
    for r in rows:
        assert r["floor_s"] == pytest.approx(r["flops"] / (r["matmul_tflops"] * 1e12)) and r["step_s"] > 0
        assert r["naive_6NT_flops"] > r["flops"] > 0
    stage1, stage2 = rows[0], rows[2]
    assert stage2["positions"] > stage1["positions"] and stage2["flops"] > stage1["flops"]  # 30 layers vs 8
    # one best rate per shape for the run: the two CTC alphabets of a stage share it
    assert rows[0]["matmul_tflops"] == rows[1]["matmul_tflops"] and rows[2]["matmul_tflops"] == rows[3]["matmul_tflops"]
    assert "| stage1 | float32 | full | 2 |" in (tmp_path / "train_floor.md").read_text()


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_the_counted_flops_agree_with_torchs_flop_counter(stage):
    """The floor's FLOPs, counted by hand from the shapes, within 10 % of what torch counts running the step."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    student = train_floor.build_student("random", torch.float32, "cpu")
    batch = train_floor.make_batch(2, train_floor.RELEASE.pooling)
    step, _ = train_floor.step_fn(student, stage, batch, "cpu", torch.float32, "full")
    step()  # AdamW's state is created on the first step
    with FlopCounterMode(display=False) as counter:
        step()
    counted = train_floor.step_flops(student, stage, batch)["flops"]
    assert counted == pytest.approx(counter.get_total_flops(), rel=0.10)
