"""Stage 1 of AuRA: layer-wise distillation of cached Whisper states into a LoRA student.

The student runs ``[chat prompt up to the audio][audio tokens]`` (the audio states it computes there are
the ones stage 2 and inference compute: what follows the audio cannot change them), and its
distillation heads map chosen LLM layers onto the teacher's layers, read from the feature store; the loss
is :func:`pipeline.models.distillation.distillation_loss` on the targets as
:class:`pipeline.train.targets.TargetPreparer` gives them (standardised per channel by default). With
``student.ctc_weight > 0`` the audio states of ``student.ctc_layer`` also spell the transcript in the
LLM's tokens (:mod:`pipeline.models.ctc`), and its greedy transcript's WER judges stage 1 in words.

Evaluation on the monitored split: per-layer cosine to the teacher beside the same cosine for a constant
and a per-position mean predictor (a number that does not beat them says nothing about content), and
the CTC head's WER; with ``train.speaker_adversary_weight > 0``, the speaker adversary's accuracy
(``speaker_acc``, beside naming each rank's commonest voice, ``speaker_majority``). The loop, resume and
export are :class:`pipeline.train.recipe.StudentRecipe`'s.

Usage::

    aura train --stage distill --config configs/demo.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from pipeline.config import AuraConfig
from pipeline.models.distillation import distillation_loss
from pipeline.train.data import ReplayMix
from pipeline.train.recipe import StudentRecipe


class CTCScore:
    """A CTC head's greedy transcripts on the watched split: corpus WER over every rank (an empty transcript,
    what a student that does not listen gives, scores 100 %) and the mean CTC loss, as ``{name}_wer`` and
    ``{name}_loss``. ``name`` is also the prefix of the forward's outputs it reads and of its ``per_layer`` entry:
    ``ctc`` (the CTC head) or ``character_ctc`` (a second, character head beside it)."""

    def __init__(self, tokenizer, head, name: str = "ctc"):
        self.tokenizer = tokenizer
        self.head = head
        self.name = name
        self.references: list[str] = []
        self.hypotheses: list[str] = []
        self.loss_sum = 0.0
        self.count = 0

    def add(self, batch, out: dict, weight: int, per_layer: dict) -> None:
        from pipeline.models.ctc import ctc_greedy_ids
        from pipeline.prompts import spoken_text

        ids_per_clip = ctc_greedy_ids(out[f"{self.name}_log_probs"], out[f"{self.name}_lengths"])
        loss = float(per_layer[self.name]["loss"])
        for ids, row in list(zip(ids_per_clip, batch.rows))[:weight]:
            self.references.append(spoken_text(row))
            self.hypotheses.append(self.head.text(ids, self.tokenizer))
        self.loss_sum += loss * weight
        self.count += weight

    def reduce(self) -> dict[str, float]:
        from pipeline.eval.metrics import word_error_rate

        wer = word_error_rate(self.references, self.hypotheses) if self.references else None
        errors = wer.errors if wer and wer.wer is not None else 0
        words = wer.reference_words if wer and wer.wer is not None else 0
        totals = torch.tensor([errors, words, self.loss_sum, self.count], dtype=torch.float64)
        if dist.is_initialized():
            dist.all_reduce(totals)
        result = {}
        if totals[1] > 0:
            result[f"{self.name}_wer"] = float(totals[0] / totals[1])
        if totals[3] > 0:
            result[f"{self.name}_loss"] = float(totals[2] / totals[3])
        return result


class DistillRecipe(StudentRecipe):
    """Stage-1 distillation; see the module docstring."""

    stage = "distill"

    def __init__(self, cfg: AuraConfig, run_dir: str | Path):
        super().__init__(cfg, run_dir)
        self._reference = None  # fitted on the first evaluation

    def build_student(self):
        """The student; LoRA deeper than the distilled layers (``student.lora_layers`` above them, for stage 2)
        frozen: stage 1's forward stops at the distilled depth, so it would get no gradient."""
        student = super().build_student()
        student.freeze_lora(range(student.distill_depth, student.lora_layers))
        if student.ctc_head is not None and self.cfg.student.ctc_weight == 0:
            student.ctc_head.requires_grad_(False)  # carried from the starting parts for the read-out, not trained
        self.speaker_index: dict[str, int] = {}
        if self.cfg.train.speaker_adversary_weight > 0:
            self._add_speaker_adversary(student)
        return student

    def _add_speaker_adversary(self, student) -> None:
        """``student.speaker_adversary`` (:mod:`pipeline.models.adversary`) over the training split's voices. The
        voice list is the run's (``speaker_voices.json`` in the run directory, kept on resume): voices that a
        grown dataset adds later have no class and are left out of its loss."""
        import json

        from pipeline.fs import atomic_write_text
        from pipeline.models.adversary import SpeakerAdversary

        train = self.cfg.train
        self.adversary_layer = train.speaker_adversary_layer or student.ctc_layer or student.distill_depth
        if self.adversary_layer > student.distill_depth:
            raise ValueError(f"train.speaker_adversary_layer={self.adversary_layer}: stage 1 runs the student's "
                             f"layers 1..{student.distill_depth} only")
        path = self.run_dir / "speaker_voices.json"
        if path.is_file():
            voices = json.loads(path.read_text())
        else:
            unnamed = [k for k in self.data.keys() if not self.data.rows[k].get("speaker")]
            if unnamed:
                raise ValueError(f"train.speaker_adversary_weight needs each training clip's voice: {len(unnamed)} "
                                 f"manifest row(s) have no 'speaker' (e.g. {unnamed[0]!r})")
            voices = sorted({self.data.rows[k]["speaker"] for k in self.data.keys()})
            if self.rank == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(voices, indent=1))
        self.speaker_index = {voice: i for i, voice in enumerate(voices)}
        ref = next(student.patch_embedding.parameters())
        student.speaker_adversary = SpeakerAdversary(student.decoder.embed_tokens.weight.shape[1], len(voices)).to(
            device=ref.device, dtype=ref.dtype)
        if self.rank == 0:
            print(f"speaker adversary on layer {self.adversary_layer}: {len(voices)} training voices, "
                  f"reversed gradient x {train.speaker_adversary_weight}", flush=True)

    def compute_loss(self, batch) -> tuple[torch.Tensor, dict[Any, dict[str, torch.Tensor]]]:
        """The distillation loss over the distilled layers of ``[audio prefix][audio tokens]`` (the layout
        inference computes the audio states in), plus ``student.ctc_weight`` x the CTC loss (over the clips with
        words). With ``train.replay_distill`` off, replayed clips are left out of the distillation."""

        student = self.engine.module
        mel, token_lengths = self.student_mel(batch)
        # forward_distill stops at the deepest distilled layer; DeepSpeed's ZeRO-3 gather hooks sit
        # on the submodules, so calling the module method directly is safe.
        adversary_at = (self.adversary_layer,) if self.speaker_index else ()
        out = student.forward_distill(mel.to(self.device, self._dtype), token_lengths.to(self.device),
                                      prefix_ids=self.audio_prefix, audio_states_at=adversary_at,
                                      with_ctc=self.cfg.student.ctc_weight > 0 or not student.training)
        targets, target_lengths = self.prepare_targets(batch.targets, batch.target_lengths)
        assert (token_lengths == target_lengths).all(), "student tokens and target frames differ in number"
        self._last_out, self._last_targets = out, targets
        self._last_tokens = len(self.audio_prefix) * len(batch.audio) + int(token_lengths.sum())
        distilled = out["token_mask"]
        if not self.cfg.train.replay_distill:  # replayed clips hold the read-out through the CTC term alone
            own = torch.tensor([not ReplayMix.is_replayed(key) for key in batch.keys], device=distilled.device)
            distilled = distilled & own[:, None]
        loss, per_layer = distillation_loss(out["layer_states"], targets, distilled, kind=self.cfg.student.loss)
        if adversary_at:
            # The classifier's own loss is added in full (it learns to tell the voices); the student's states get
            # its gradient reversed and scaled by the weight.
            ids = torch.tensor([self.speaker_index.get(row.get("speaker"), -100) for row in batch.rows])
            ce, accuracy = student.speaker_adversary(out["audio_states"][self.adversary_layer], out["token_mask"], ids,
                                                     self.cfg.train.speaker_adversary_weight)
            loss = loss + ce
            per_layer["speaker"] = {"loss": ce, "accuracy": accuracy}
        return self._add_ctc(loss, per_layer, batch, out, self.cfg.student.ctc_weight,
                             self.cfg.student.character_ctc_weight)

    def reference_predictors(self):
        """Constant and position-mean predictors fitted on training targets (:mod:`pipeline.train.reference`)."""
        from pipeline.train.reference import ReferencePredictors

        if self._reference is None:
            self._reference = ReferencePredictors.fit_on_data(self.prepare_targets, self.data,
                                                              self.cfg.train.reference_samples)
        return self._reference

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Per-layer cosine to the teacher on the monitored split, split across ranks, beside the same cosine
        for the constant and the position-mean predictors (``const_cos_L*``, ``posmean_cos_L*``)."""
        if not self.heldout.keys():
            return {}
        reference = self.reference_predictors()
        self.engine.eval()
        layers = self.store.fingerprint.layers
        sums = {f"{prefix}cos_L{layer}": 0.0 for layer in layers for prefix in ("", "const_", "posmean_")}
        if self.speaker_index:
            sums["speaker_acc"] = 0.0
        voice_counts: dict[str, int] = {}
        count = 0
        student = self.engine.module
        scores = [CTCScore(self.tokenizer, head, name) for head, name in
                  ((student.ctc_head, "ctc"), (student.character_ctc_head, "character_ctc")) if head is not None]
        for batch, weight in self.heldout_batches():
            _, per_layer = self.compute_loss(batch)
            targets, mask = self._last_targets, self._last_out["token_mask"]  # as compute_loss prepared them
            for layer in layers:
                sums[f"cos_L{layer}"] += float(per_layer[layer]["cosine"]) * weight
            for score in scores:
                score.add(batch, self._last_out, weight, per_layer)
            if self.speaker_index:
                sums["speaker_acc"] += float(per_layer["speaker"]["accuracy"]) * weight
                for row in batch.rows[:weight]:
                    voice_counts[row.get("speaker")] = voice_counts.get(row.get("speaker"), 0) + 1
            for kind, prefix in (("constant", "const_"), ("position_mean", "posmean_")):
                _, ref = distillation_loss(reference.predict(kind, mask), targets, mask)
                for layer, values in ref.items():
                    sums[f"{prefix}cos_L{layer}"] += float(values["cosine"]) * weight
            count += weight
        self.engine.train()
        result = self._reduce_weighted(sums, count)
        for prefix in ("", "const_", "posmean_"):
            result[f"{prefix}cos_mean"] = sum(result[f"{prefix}cos_L{layer}"] for layer in layers) / len(layers)
        for score in scores:
            result.update(score.reduce())
        if self.speaker_index:
            # what naming the commonest voice of this rank's clips scores (the classifier's floor)
            result["speaker_majority"] = self._reduce_weighted(
                {"share": max(voice_counts.values(), default=0)}, sum(voice_counts.values()))["share"]
        return result
