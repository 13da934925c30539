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


@pytest.mark.slow
def test_the_listening_benchmark_pairs_students_on_the_same_clips(trained_tiny):
    """benchmarks.listening: each student's answer loss with its clip's own audio and with another's, and the
    gap to the first student clip by clip (none for the same student twice, some for a student whose LoRA moved)."""
    import doctest

    from benchmarks import listening
    from pipeline.eval.curves import checkpoint_exports

    assert doctest.testmod(listening).failed == 0
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    _, step1 = checkpoint_exports(trained_tiny / "checkpoints" / "distill")[-1]
    with safe_open(str(step1), framework="pt") as handle:
        metadata = handle.metadata()
    torch.manual_seed(0)
    tensors = {k: v + 0.5 * torch.randn_like(v) if "lora_B" in k else v for k, v in load_file(str(step1)).items()}
    step2 = trained_tiny / "changed.safetensors"  # another student: its LoRA moved
    save_file(tensors, str(step2), metadata=metadata)
    out = trained_tiny / "listening.json"
    listening.main(["--config", "configs/tiny.yaml", "--set", f"workdir={trained_tiny}", "--split", "heldout",
                    "--samples", "3", "--export", f"one={step1}", "--export", f"again={step1}",
                    "--export", f"two={step2}", "--out", str(out)])
    result = json.loads(out.read_text())
    students = result["students"]
    assert result["clips"] == 3 and list(students) == ["one", "again", "two"]
    for s in students.values():
        assert s["clips"] == 3 and 0.0 <= s["listen_rate"] <= 1.0 and s["own_audio_loss"] > 0
    assert students["again"]["vs_one"] == {"gap": 0.0, "low": 0.0, "high": 0.0}
    assert students["two"]["vs_one"]["gap"] != 0.0
    assert students["two"]["own_audio_loss"] - students["one"]["own_audio_loss"] == pytest.approx(
        students["two"]["vs_one"]["gap"], abs=1e-6)

    # a folder of examples (as shipped beside the released student) instead of a split: the same clips, same losses
    import soundfile as sf

    from pipeline.data.shards import ShardSet
    from pipeline.prompts import target_for
    from pipeline.train.data import TrainingData

    data = TrainingData(ShardSet(trained_tiny / "shards"), None, split="heldout", tasks=["transcribe", "spoken_qa"])
    examples = trained_tiny / "examples"
    examples.mkdir()
    lines = []
    for key in result["keys"]:
        row = data.rows[key]
        sf.write(examples / f"{key}.wav", data.audio(key), 16000, subtype="FLOAT")
        lines.append(json.dumps({"key": key, "file": f"{key}.wav", "task": row["task"], "reference": target_for(row)}))
    (examples / "examples.jsonl").write_text("\n".join(lines) + "\n")
    listening.main(["--config", "configs/tiny.yaml", "--set", f"workdir={trained_tiny}", "--examples", str(examples),
                    "--export", f"one={step1}", "--out", str(out)])
    again = json.loads(out.read_text())
    assert again["clips"] == 3 and again["clips_from"] == str(examples)
    assert again["students"]["one"]["own_audio_loss"] == pytest.approx(students["one"]["own_audio_loss"], abs=1e-5)
