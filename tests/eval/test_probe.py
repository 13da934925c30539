"""The teacher-decoder probe and the learning curves on the tiny config (random models: the numbers say
nothing about the method; the paths, shapes and baselines are what is checked)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_aura


@pytest.fixture(scope="module")
def trained_tiny(tiny_workdir, tmp_path_factory):
    workdir = shutil.copytree(tiny_workdir[0], tmp_path_factory.mktemp("probe") / "run",
                              ignore=shutil.ignore_patterns("checkpoints"))
    done = run_aura("train", "--config", "configs/tiny.yaml", "--set", f"workdir={workdir}",
                    "--set", "train.max_steps=2", "--set", "train.checkpoint_every=1", "--set", "student.pooling=2",
                    "--set", "student.standardize_targets=true", "--set", "student.ctc_weight=0.5", timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_probe_reports_student_teacher_and_baselines(trained_tiny):
    out = trained_tiny / "probe.json"
    done = run_aura("probe", "--config", "configs/tiny.yaml", "--set", f"workdir={trained_tiny}",
                    "--split", "heldout", "--max-samples", "3", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["utterances"] == 3 and result["pooling"] == 2 and result["standardized"]
    assert set(result["wer"]) == {"student", "teacher", "position_mean", "ctc"}  # ctc: the student's CTC head
    assert all(w >= 0 for w in result["wer"].values())
    assert {"cos_L2", "const_cos_L2", "posmean_cos_L2", "cos_L4"} <= set(result["cosine"])
    assert "Whisper decoder WER" in done.stdout and "CTC head WER" in done.stdout


@pytest.mark.slow
def test_every_checkpoint_leaves_a_student_file_for_the_curves(trained_tiny):
    from pipeline.config import load_config
    from pipeline.eval.curves import checkpoint_exports, learning_curve, write_curves

    exports = checkpoint_exports(trained_tiny / "checkpoints" / "distill")
    assert [s for s, _ in exports] == [1, 2]
    cfg = load_config("configs/tiny.yaml", [f"workdir={trained_tiny}", "eval.max_new_tokens=3"])
    curve = learning_curve(cfg, trained_tiny / "checkpoints" / "distill", max_samples=2, progress=False)
    assert [p["step"] for p in curve["points"]] == [1, 2]
    assert [p["examples_seen"] for p in curve["points"]] == [4, 8]  # batch 2 x 2 workers per step
    assert curve["baselines"]["wer_empty"] == 1.0
    paths = write_curves(curve, trained_tiny / "reports")
    assert paths["png"].stat().st_size > 0 and "| 2 | 8 |" in paths["md"].read_text()
