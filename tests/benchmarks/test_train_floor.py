"""The training-floor benchmark: its model is the released student's shape, and its floor is below the step."""

import json

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


def test_both_stages_run_and_the_floor_is_under_the_step(tmp_path):
    train_floor.main(["--weights", "random", "--batch", "2", "--steps", "1", "--threads", "1",
                      "--ctc-alphabet", "full,batch", "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "train_floor.json").read_text())["rows"]
    assert [(r["stage"], r["ctc"]) for r in rows] == [("stage1", "full"), ("stage1", "batch"), ("stage2", "full"),
                                                      ("stage2", "batch")]
    for r in rows:
        assert 0 < r["floor_s"] < r["step_s"] and 0 < r["share_of_floor"] < 1
    stage1, stage2 = rows[0], rows[2]
    assert stage2["positions"] > stage1["positions"] and stage2["floor_s"] > stage1["floor_s"]  # 30 layers vs 8
    assert "| stage1 | float32 | full | 2 |" in (tmp_path / "train_floor.md").read_text()
