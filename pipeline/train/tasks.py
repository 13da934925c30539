"""Stage 2 of AuRA: speech-task tuning (transcription, spoken questions) with the LM loss on answers.

Same loop, checkpoints, sampler and resume as stage 1 (both are :class:`~pipeline.train.recipe.StudentRecipe`
subclasses); it starts from the stage-1 export (patch embedding, LoRA, heads; or ``train.tasks_init_from``, e.g.
the released student to train it on), runs the full LLM forward on
``[chat prompt][audio tokens][instruction][answer]`` and optimises the answer tokens' cross-entropy,
plus ``train.distill_weight`` x the distillation loss and ``train.tasks_ctc_weight`` x the CTC loss
(students with a CTC head) when those weights are above zero.

Usage::

    aura train --stage tasks --config configs/demo.yaml
"""

from __future__ import annotations

import torch

from pipeline.data.manifest import TASKS
from pipeline.models.distillation import distillation_loss
from pipeline.models.sequence import layout_speech_batch
from pipeline.prompts import answer_ids, instruction_for, prompt_ids, target_for
from pipeline.train.recipe import StudentRecipe


class TasksRecipe(StudentRecipe):
    """Stage-2 speech-task tuning; see the module docstring."""

    stage = "tasks"

    def train_tasks(self) -> list[str] | None:
        return list(TASKS)

    def needs_targets(self) -> bool:
        return self.cfg.train.distill_weight > 0

    def build_student(self):
        """The student with its starting parts loaded (the stage-1 export or ``train.tasks_init_from``); heads that
        get no gradient frozen, and with ``train.tasks_frozen_layers`` the patch embedding and the LoRA below."""
        student = super().build_student()
        if self.cfg.train.distill_weight == 0:
            # Heads would get no gradient; frozen they stay out of the optimizer (and ZeRO's buckets).
            student.heads.requires_grad_(False)
        if student.ctc_head is not None and self.cfg.train.tasks_ctc_weight == 0:
            student.ctc_head.requires_grad_(False)
        elif student.ctc_head is None and self.cfg.train.tasks_ctc_weight > 0:
            raise ValueError("train.tasks_ctc_weight > 0 needs a stage-1 student with a CTC head (student.ctc_weight > 0)")
        if student.character_ctc_head is not None:
            student.character_ctc_head.requires_grad_(False)  # a stage-1 training aid: stage 2 gives it no loss
        frozen = self.cfg.train.tasks_frozen_layers
        if frozen:
            if student.lora_layers <= frozen:
                raise ValueError(f"train.tasks_frozen_layers={frozen} keeps every LoRA layer of this student "
                                 f"(student.lora_layers={student.lora_layers}) as it starts: nothing would learn; set "
                                 f"student.lora_layers above it")
            student.patch_embedding.requires_grad_(False)
            student.freeze_lora(range(frozen))
            if self.rank == 0:
                print(f"stage 2 trains the LoRA of layers {frozen + 1}-{student.lora_layers}; the patch embedding and "
                      f"layers 1-{frozen} keep their starting weights", flush=True)
        self._prompts = {task: prompt_ids(self.tokenizer, instruction_for(task)) for task in TASKS}
        return student

    def _layout(self, batch, audio=None):
        mel, token_lengths = self.student_mel(batch, audio)
        tasks = [row.get("task") or "transcribe" for row in batch.rows]
        layout = layout_speech_batch(
            [self._prompts[t][0] for t in tasks], token_lengths,
            after_audio=[self._prompts[t][1] for t in tasks],
            targets=[answer_ids(self.tokenizer, target_for(row)) for row in batch.rows],
            pad_id=self.tokenizer.pad_token_id or 0,
        )
        layout = {k: v.to(self.device) for k, v in layout.items()}
        return dict(mel=mel.to(self.device, self._dtype), token_lengths=token_lengths.to(self.device), **layout)

    def compute_loss(self, batch, audio=None):
        """LM loss on the answers (+ ``distill_weight`` x distillation, + ``tasks_ctc_weight`` x CTC);
        ``audio`` replaces the batch's clips (the listening test)."""
        student = self.engine.module
        use_distill = self.cfg.train.distill_weight > 0 and audio is None
        use_ctc = self.cfg.train.tasks_ctc_weight > 0 and audio is None
        inputs = self._layout(batch, audio)
        out = student(**inputs, return_layer_states=use_distill, return_ctc=use_ctc, logits="labels")
        self._last_out = out
        self._last_tokens = int(inputs["attention_mask"].sum())
        loss = out["loss"]
        per_layer: dict = {"lm": {"loss": out["loss"].detach()}}
        if use_distill:
            targets = self._to_device(batch)
            d_loss, d_layers = distillation_loss(out["layer_states"], targets, out["token_mask"], kind=self.cfg.student.loss)
            loss = loss + self.cfg.train.distill_weight * d_loss
            per_layer.update(d_layers)
        if use_ctc:
            loss, per_layer = self._add_ctc(loss, per_layer, batch, out, self.cfg.train.tasks_ctc_weight)
        return loss, per_layer

    def evaluate(self) -> dict[str, float]:
        """Answer loss on the monitored split, and the listening test: the same answers' loss when the
        clip is swapped for another clip of the batch. A student that listens scores its own audio better
        (``listen_rate``: the share of clips where it does; 0.5 is chance). Full WER / accuracy: ``aura eval``."""
        if not self.heldout.keys():
            return {}
        self.engine.eval()
        sums = {"loss": 0.0, "other_audio_loss": 0.0, "listen_rate": 0.0}
        count = 0
        previous = None
        with torch.no_grad():
            for batch, weight in self.heldout_batches(with_targets=self.cfg.train.distill_weight > 0):
                self.compute_loss(batch)
                own_samples = self._last_out["sample_loss"]
                # another clip's audio: the batch rolled by one (a batch of one borrows the last batch's clip)
                donors = batch.audio[1:] + batch.audio[:1] if len(batch.audio) > 1 else [previous or batch.audio[0]]
                self.compute_loss(batch, audio=donors)
                other_samples = self._last_out["sample_loss"]
                previous = batch.audio[-1]
                real = slice(0, weight)
                sums["loss"] += float(own_samples[real].sum())
                sums["other_audio_loss"] += float(other_samples[real].sum())
                sums["listen_rate"] += float((own_samples[real] < other_samples[real]).float().sum())
                count += weight
        self.engine.train()
        result = self._reduce_weighted(sums, count)
        result["heldout_loss"] = result.pop("loss")
        return result
