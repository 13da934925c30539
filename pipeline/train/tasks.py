"""Stage 2 of AuRA: speech-task tuning (transcription, spoken questions) with the LM loss on answers.

Same launcher, checkpoints, sampler and resume as stage 1 (it subclasses :class:`DistillRecipe`); it
starts from the stage-1 export (patch embedding, LoRA, heads), runs the full LLM forward on
``[chat prompt][audio tokens][instruction][answer]`` and optimises the answer tokens' cross-entropy,
plus ``train.distill_weight`` x the distillation loss when that weight is above zero.

Usage::

    aura train --stage tasks --config configs/demo.yaml
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.prompts import answer_ids, instruction_for, prompt_ids, target_for
from pipeline.train.recipe import DistillRecipe


class TasksRecipe(DistillRecipe):
    stage = "tasks"

    def train_tasks(self) -> list[str] | None:
        return ["transcribe", "spoken_qa"]

    def needs_targets(self) -> bool:
        return self.cfg.train.distill_weight > 0

    def _build_student(self):
        student = super()._build_student()
        stage1 = Path(self.cfg.paths.checkpoints) / "distill" / "export"
        if not (stage1 / "student.safetensors").exists():
            raise FileNotFoundError(f"stage 2 starts from stage 1: no export at {stage1}; run `aura train --stage distill`")
        student.load_trainable(stage1 / "student.safetensors")
        if self.cfg.train.distill_weight == 0:
            # Heads would get no gradient; frozen they stay out of the optimizer (and ZeRO's buckets).
            student.heads.requires_grad_(False)
        self._prompts = {task: prompt_ids(self.tokenizer, instruction_for(task)) for task in ("transcribe", "spoken_qa")}
        return student

    def compute_loss(self, batch):
        from pipeline.models.student import distillation_loss, layout_speech_batch

        student = self.engine.module
        mel, token_lengths = student.patch_embedding.mel_batch(batch.audio)
        tasks = [row.get("task") or "transcribe" for row in batch.rows]
        layout = layout_speech_batch(
            [self._prompts[t][0] for t in tasks], token_lengths,
            after_audio=[self._prompts[t][1] for t in tasks],
            targets=[answer_ids(self.tokenizer, target_for(row)) for row in batch.rows],
            pad_id=self.tokenizer.pad_token_id or 0,
        )
        layout = {k: v.to(self.device) for k, v in layout.items()}
        use_distill = self.cfg.train.distill_weight > 0
        out = student(mel=mel.to(self.device, self._dtype), token_lengths=token_lengths.to(self.device),
                      return_layer_states=use_distill, **layout)
        loss = out["loss"]
        per_layer: dict = {"lm": {"loss": out["loss"].detach(), "cosine": torch.tensor(0.0)}}
        if use_distill:
            targets = self._to_device(batch)
            d_loss, d_layers = distillation_loss(out["layer_states"], targets, out["token_mask"], kind=self.cfg.student.loss)
            loss = loss + self.cfg.train.distill_weight * d_loss
            per_layer.update(d_layers)
        return loss, per_layer

    def evaluate(self) -> dict[str, float]:
        """Held-out answer loss (the full WER / accuracy evaluation is ``aura eval``)."""
        if not self.heldout.keys():
            return {}
        self.engine.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch, weight in self.heldout_batches(with_targets=self.cfg.train.distill_weight > 0):
                loss, _ = self.compute_loss(batch)
                total += float(loss) * weight
                count += weight
        self.engine.train()
        return {"heldout_loss": self._reduce_weighted({"loss": total}, count)["loss"]}
