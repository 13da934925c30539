"""Stage 2 on the tiny config: it starts from stage 1 in the same layout, trains with per-part learning
rates, and its evaluation runs the listening test (the answers' loss with another clip's audio)."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import ConfigError, load_config
from pipeline.train.launch import stage_config
from tests.conftest import run_aura


def test_stage_config_applies_the_stage2_settings():
    cfg = load_config("configs/tiny.yaml", ["train.tasks_max_steps=3", "train.tasks_lr=5e-4",
                                            "train.tasks_warmup_steps=0"])
    tasks = stage_config(cfg, "tasks").train
    assert (tasks.max_steps, tasks.lr, tasks.warmup_steps) == (3, 5e-4, 0)
    assert stage_config(cfg, "distill").train.max_steps == cfg.train.max_steps == 8
    plain = stage_config(load_config("configs/tiny.yaml"), "tasks").train
    assert (plain.max_steps, plain.lr) == (8, 1e-3)
    # Each stage has its own starting point: stage 1's init_from never leaks into stage 2.
    cfg = load_config("configs/tiny.yaml", ["train.init_from=a/student.safetensors"])
    assert stage_config(cfg, "distill").train.init_from.is_absolute()
    assert stage_config(cfg, "tasks").train.init_from is None
    cfg = load_config("configs/tiny.yaml", ["train.tasks_init_from=b/student.safetensors"])
    assert stage_config(cfg, "tasks").train.init_from.name == "student.safetensors"


def test_optimizer_groups_follow_the_parts():
    import torch

    from pipeline.config import StudentConfig
    from pipeline.models.student import AuraStudent
    from pipeline.train.recipe import optimizer_groups
    from tests.models.test_student import make_llm

    student = AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=2, distill_depth=2), [2, 4], 24, 16, 1)
    cfg = load_config("configs/tiny.yaml", ["train.lr=1e-3", "train.lr_scale_patch_embedding=4",
                                            "train.lr_scale_heads=2"])
    groups = {g["name"]: g for g in optimizer_groups(student, cfg)}
    assert {k: g["lr"] for k, g in groups.items()} == {"lora": 1e-3, "patch_embedding": 4e-3, "heads": 2e-3}
    counted = sum(p.numel() for g in groups.values() for p in g["params"])
    assert counted == sum(p.numel() for p in student.parameters() if p.requires_grad)
    student.heads.requires_grad_(False)
    assert "heads" not in {g["name"] for g in optimizer_groups(student, cfg)}
    assert all(isinstance(p, torch.nn.Parameter) for g in groups.values() for p in g["params"])


def test_the_front_end_has_its_own_learning_rate():
    from pipeline.config import StudentConfig
    from pipeline.models.student import AuraStudent
    from pipeline.train.recipe import optimizer_groups
    from tests.models.test_student import make_llm

    student = AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=2, distill_depth=2, front_end_channels=8),
                                   [2, 4], 24, 16, 1)
    cfg = load_config("configs/tiny.yaml", ["train.lr=1e-3", "train.lr_scale_front_end=10"])
    groups = {g["name"]: g for g in optimizer_groups(student, cfg)}
    assert groups["front_end"]["lr"] == 1e-2 and groups["patch_embedding"]["lr"] == 1e-3
    front_end = {id(p) for p in student.patch_embedding.front_end.parameters()}
    assert {id(p) for p in groups["front_end"]["params"]} == front_end
    assert not front_end & {id(p) for p in groups["patch_embedding"]["params"]}


def test_a_zero_learning_rate_keeps_the_patch_embedding_and_trains_the_stem_projection():
    import torch

    from pipeline.config import StudentConfig
    from pipeline.models.student import AuraStudent
    from pipeline.train.recipe import optimizer_groups
    from tests.models.test_student import make_llm

    student = AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=2, distill_depth=2, teacher_stem=True),
                                   [2, 4], 24, 16, 1)
    cfg = load_config("configs/tiny.yaml", ["train.lr=1e-3", "train.lr_scale_patch_embedding=0"])
    groups = optimizer_groups(student, cfg)
    assert {g["name"]: g["lr"] for g in groups}["patch_embedding"] == 0.0
    optimizer = torch.optim.AdamW(groups, weight_decay=0.1)  # decoupled decay scales with lr: none at 0
    before = {k: v.clone() for k, v in student.patch_embedding.named_parameters()}
    for param in student.parameters():
        if param.requires_grad:
            param.grad = torch.ones_like(param)
    optimizer.step()
    after = dict(student.patch_embedding.named_parameters())
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"stem_proj.weight", "stem_proj.bias"}


def test_the_teacher_layers_train_in_a_group_of_their_own_only_when_asked():
    from pipeline.config import StudentConfig
    from pipeline.models.student import AuraStudent
    from pipeline.train.recipe import optimizer_groups
    from tests.models.test_student import make_llm

    student = AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=2, distill_depth=2, teacher_stem=True,
                                                                   teacher_blocks=1), [2, 4], 24, 16, 1)
    blocks = {id(p) for p in student.patch_embedding.teacher_blocks.parameters()}
    cfg = load_config("configs/tiny.yaml", ["train.lr=1e-3", "student.teacher_stem=true", "student.teacher_blocks=1",
                                            "train.lr_scale_teacher_blocks=0.1"])
    frozen = optimizer_groups(student, cfg)  # as built: copied and frozen, in no group
    assert "teacher_blocks" not in {g["name"] for g in frozen}
    assert not blocks & {id(p) for g in frozen for p in g["params"]}
    student.patch_embedding.teacher_blocks.requires_grad_(True)  # what the recipe does at this lr scale
    groups = {g["name"]: g for g in optimizer_groups(student, cfg)}
    assert {id(p) for p in groups["teacher_blocks"]["params"]} == blocks and groups["teacher_blocks"]["lr"] == 1e-4
    projection = {id(p) for p in student.patch_embedding.blocks_proj.parameters()}
    assert projection <= {id(p) for p in groups["front_end"]["params"]}
    with pytest.raises(ConfigError, match="set student.teacher_blocks"):
        load_config("configs/tiny.yaml", ["train.lr_scale_teacher_blocks=0.1"])
    with pytest.raises(ConfigError, match="must train"):
        load_config("configs/tiny.yaml", ["student.teacher_stem=true", "student.teacher_blocks=1",
                                          "student.teacher_blocks_weights=random"])


def test_the_speaker_adversary_trains_at_the_heads_rate_and_is_never_saved(tmp_path):
    from pipeline.config import StudentConfig
    from pipeline.models.adversary import SpeakerAdversary
    from pipeline.models.student import AuraStudent
    from pipeline.train.recipe import optimizer_groups
    from tests.models.test_student import make_llm

    student = AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=2, distill_depth=2), [2, 4], 24, 16, 1)
    saved = set(student.trainable_state_dict())
    student.speaker_adversary = SpeakerAdversary(student.decoder.embed_tokens.weight.shape[1], 3)
    cfg = load_config("configs/tiny.yaml", ["train.lr=1e-3", "train.lr_scale_heads=2"])
    groups = {g["name"]: g for g in optimizer_groups(student, cfg)}
    assert groups["speaker_adversary"]["lr"] == 2e-3
    assert {id(p) for p in groups["speaker_adversary"]["params"]} == {id(p) for p in student.speaker_adversary.parameters()}
    assert set(student.trainable_state_dict()) == saved
    again = AuraStudent.from_llm(make_llm("sdpa"), StudentConfig(lora_rank=2, distill_depth=2), [2, 4], 24, 16, 1)
    assert again.load_trainable(student.save_trainable(tmp_path / "s.safetensors")) == []


@pytest.mark.slow
def test_stage2_trains_and_runs_the_listening_test(tiny_workdir, tmp_path):
    """Stage 1 with the auxiliary CTC head (and a character head beside it), then stage 2 with the LM, distillation
    and CTC losses (the character head frozen: a stage-1 aid)."""
    workdir = shutil.copytree(tiny_workdir[0], tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    common = ["--config", "configs/tiny.yaml", "--set", f"workdir={workdir}", "--set", "train.eval_every=2",
              "--set", "train.checkpoint_every=2", "--set", "student.ctc_weight=0.5",
              "--set", "student.character_ctc_weight=0.5"]
    done = run_aura("train", *common, "--set", "train.max_steps=2")
    assert done.returncode == 0, done.stderr[-3000:]
    stage1 = list(csv.DictReader(open(workdir / "checkpoints" / "distill" / "eval.csv")))
    for row in stage1:  # CTC greedy transcripts of untrained heads: WER measured, loss positive
        for head in ("ctc", "character_ctc"):
            assert float(row[f"{head}_wer"]) >= 0 and float(row[f"{head}_loss"]) > 0
    last = list(csv.DictReader(open(workdir / "checkpoints" / "distill" / "metrics.csv")))[-1]
    assert float(last["loss_Lctc"]) > 0 and float(last["loss_Lcharacter_ctc"]) > 0
    done = run_aura("train", *common, "--stage", "tasks", "--set", "train.tasks_max_steps=2",
                    "--set", "train.distill_weight=0.5", "--set", "train.lr_scale_patch_embedding=2",
                    "--set", "train.tasks_ctc_weight=0.5")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(open(workdir / "checkpoints" / "tasks" / "eval.csv")))
    assert [int(r["step"]) for r in rows] == [0, 2]
    for row in rows:
        assert float(row["heldout_loss"]) > 0 and float(row["other_audio_loss"]) > 0
        assert 0.0 <= float(row["listen_rate"]) <= 1.0
    metrics = list(csv.DictReader(open(workdir / "checkpoints" / "tasks" / "metrics.csv")))
    assert "loss_L2" in metrics[-1]  # the distillation loss is on beside the LM loss
    assert float(metrics[-1]["loss_Lctc"]) > 0  # and the CTC loss
    assert "loss_Lcharacter_ctc" not in metrics[-1]  # not the character head's

    # Continuing elsewhere (the run's checkpoints gone): stage 2 from the stage-1 export by path starts where
    # the run above started, so its step-0 evaluation is the same; without a start it says how to give one.
    # This one adds LoRA on layers 3-4 (zero at the start, so the same step 0) and trains those alone
    # (train.tasks_frozen_layers=2, the LM loss only): the patch embedding and layers 1-2 keep the stage-1 weights.
    other = shutil.copytree(tiny_workdir[0], tmp_path / "other", ignore=shutil.ignore_patterns("checkpoints"))
    moved = ["--set", f"workdir={other}", "--stage", "tasks", "--set", "train.tasks_max_steps=3",
             "--set", "student.lora_layers=4", "--set", "train.tasks_frozen_layers=2"]  # step 1 is warmup's, at lr 0
    refused = run_aura("train", *common, *moved)
    assert refused.returncode != 0 and "train.tasks_init_from" in refused.stderr
    start = workdir / "checkpoints" / "distill" / "export" / "student.safetensors"
    done = run_aura("train", *common, *moved, "--set", f"train.tasks_init_from={start}",
                    "--set", "train.lr_scale_patch_embedding=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stage 2 trains the LoRA of layers 3-4" in done.stdout + done.stderr
    again = list(csv.DictReader(open(other / "checkpoints" / "tasks" / "eval.csv")))
    assert {k: float(v) for k, v in again[0].items()} == pytest.approx({k: float(v) for k, v in rows[0].items()})
    from pipeline.models.student import _lora_layer

    stage1 = load_file(str(start))
    stage2 = load_file(str(other / "checkpoints" / "tasks" / "export" / "student.safetensors"))
    kept = [k for k in stage2 if not k.startswith("lora.") or _lora_layer(k) < 2]
    assert set(kept) == set(stage1) and all(torch.equal(stage1[k], stage2[k]) for k in kept)
    assert any(k.startswith("character_ctc.") for k in kept)  # carried frozen
    assert any(stage2[k].abs().sum() > 0 for k in stage2 if k.startswith("lora.") and "lora_B" in k
               and _lora_layer(k) >= 2)  # the new layers learnt

    # Stage 1 again from those parts with no CTC term (student.ctc_weight=0: distillation alone, e.g. on a new voice's
    # untranscribed audio), its targets standardised with another store's statistics: the head is carried unchanged
    # and still read out in the evaluation, while the rest learns; the character head, a training aid, is left.
    adapt = other / "adapt"
    done = run_aura("train", "--config", "configs/tiny.yaml", "--set", f"workdir={other}", "--set", "train.max_steps=3",
                    "--set", "train.warmup_steps=1", "--set", "train.eval_every=3", "--set", "train.checkpoint_every=3",
                    "--set", f"paths.checkpoints={adapt}",
                    "--set", f"train.init_from={start}", "--set", f"train.target_stats_from={workdir / 'store.zarr'}")
    assert done.returncode == 0, done.stderr[-3000:]
    before, after = load_file(str(start)), load_file(str(adapt / "distill" / "export" / "student.safetensors"))
    ctc_keys = [k for k in before if k.startswith("ctc.")]
    assert ctc_keys and all(torch.equal(before[k], after[k]) for k in ctc_keys)
    assert not any(k.startswith("character_ctc.") for k in after)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("lora."))
    assert all(float(r["ctc_wer"]) >= 0 for r in csv.DictReader(open(adapt / "distill" / "eval.csv")))
    assert "loss_Lctc" not in list(csv.DictReader(open(adapt / "distill" / "metrics.csv")))[-1]


@pytest.mark.slow
def test_a_character_head_trains_in_stage_1_and_is_carried_as_characters(tiny_workdir, tmp_path):
    """Stage 1 with ``student.ctc_vocabulary=characters``: the CTC loss and the read-out's WER are measured on
    letters; a later run that trains no CTC head (``student.ctc_weight=0``, the config's vocabulary left at LLM
    tokens) carries the character head unchanged, as the parts made it."""
    from pipeline.models.student import parts_ctc_head

    workdir = shutil.copytree(tiny_workdir[0], tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    common = ["--config", "configs/tiny.yaml", "--set", f"workdir={workdir}", "--set", "train.eval_every=2",
              "--set", "train.checkpoint_every=2"]
    done = run_aura("train", *common, "--set", "train.max_steps=2", "--set", "student.ctc_weight=0.5",
                    "--set", "student.ctc_vocabulary=characters")
    assert done.returncode == 0, done.stderr[-3000:]
    start = workdir / "checkpoints" / "distill" / "export" / "student.safetensors"
    assert parts_ctc_head(start)["ctc_vocabulary"] == "characters"
    assert float(list(csv.DictReader(open(workdir / "checkpoints" / "distill" / "metrics.csv")))[-1]["loss_Lctc"]) > 0
    assert all(float(r["ctc_wer"]) >= 0 for r in csv.DictReader(open(workdir / "checkpoints" / "distill" / "eval.csv")))

    carried = workdir / "carried"
    done = run_aura("train", *common, "--set", "train.max_steps=2", "--set", f"paths.checkpoints={carried}",
                    "--set", f"train.init_from={start}")
    assert done.returncode == 0, done.stderr[-3000:]
    after = carried / "distill" / "export" / "student.safetensors"
    assert parts_ctc_head(after)["ctc_vocabulary"] == "characters"
    before, now = load_file(str(start)), load_file(str(after))
    ctc_keys = [k for k in before if k.startswith("ctc.")]
    assert ctc_keys == [k for k in now if k.startswith("ctc.")] and all(torch.equal(before[k], now[k]) for k in ctc_keys)
