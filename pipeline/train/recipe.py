"""What every student recipe shares: setup / train / save_checkpoint / cleanup, in torchtune's shape.

A recipe runs inside each DeepSpeed worker (launched by Ray Train, ``torchrun`` or ``deepspeed``). This
module holds the machinery both AuRA stages run on; each stage is one recipe class that adds what makes
it a method: the student it starts from, its loss, its evaluation.

* :class:`pipeline.train.distill.DistillRecipe` (stage 1): layer-wise distillation of cached Whisper
  states (and optionally a CTC loss);
* :class:`pipeline.train.tasks.TasksRecipe` (stage 2): the LM loss on transcription / spoken-QA answers.

What :class:`StudentRecipe` provides:
    * DeepSpeed ZeRO 0-3 (ZeRO-2 default), fp32 on CPU (gloo) and bf16 on GPU (nccl);
    * optionally, the student hears some training clips in another speaker's voice (``train.speaker_shift``),
      recoloured by a random equalizer (``train.equalizer``), and SpecAugment's masked mel bands and stretches
      (``train.spec_freq_masks``, ``train.spec_time_masks``);
    * only the student's trainable parts (patch embedding, LoRA, heads) in the optimizer, one AdamW group
      per part with its own learning rate; the teacher is never loaded: targets come from the zarr feature
      store, checked against the config's fingerprint before anything starts;
    * exact resume: weights, optimizer, scheduler, RNG and sampler position are checkpointed; a run
      killed at step k and resumed reproduces the uninterrupted run's losses from step k+1 on;
    * metrics to ``metrics.csv`` and TensorBoard (total and per-part loss, cosine where distilled, learning
      rate, throughput, loader wait, the gradient's norm before clipping), the recipe's evaluation to
      ``eval.csv``, a progress bar;
    * export of the trained parts (safetensors) with the config that made them, per checkpoint and at the end.

A recipe defines ``stage``, :meth:`StudentRecipe.compute_loss` and :meth:`StudentRecipe.evaluate`, and may
change :meth:`~StudentRecipe.build_student`, :meth:`~StudentRecipe.train_tasks` and
:meth:`~StudentRecipe.needs_targets`. Usage (what the launcher runs in every worker)::

    >>> recipe = DistillRecipe(cfg, run_dir)          # doctest: +SKIP
    >>> recipe.setup(); recipe.train(); recipe.cleanup()  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from pipeline.cluster import quiet_stdout
from pipeline.config import AuraConfig
from pipeline.data.augment import (EqualizerOdds, SpeakerShiftOdds, SpecMaskOdds, apply_equalizer, apply_speaker_shift,
                                   apply_spec_masks, draw_equalizer, draw_speaker_shift, draw_spec_masks)
from pipeline.data.mel import WHISPER_SAMPLE_RATE
from pipeline.data.shards import ShardSet
from pipeline.layout import RunLayout
from pipeline.train.checkpoint import (
    checkpoint_step,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from pipeline.train.data import Prefetcher, ReplayMix, TrainingData, replayed_corpus, spread_evenly, training_data
from pipeline.train.sampler import LengthGroupedSampler
from pipeline.train.targets import TargetPreparer

log = logging.getLogger(__name__)


def use_cuda() -> bool:
    return torch.cuda.is_available()


def optimizer_groups(student, cfg: AuraConfig) -> list[dict[str, Any]]:
    """The student's trainable parameters in one AdamW group per part (``lora``, ``patch_embedding``,
    ``front_end``, ``teacher_blocks`` when they train, ``heads``, and stage 1's ``speaker_adversary`` when it has one,
    at the heads' rate), each with its learning rate: ``train.lr`` times the part's ``train.lr_scale_*``.

    The front end (inside the patch embedding) and the teacher stem's projection have a group of their own: their
    output layers start at zero, so at the patch embedding's rate they barely move in a short run
    (benchmarks/results/front_end/).
    """
    from pipeline.models.student import FRONT_END_KEYS, TEACHER_BLOCKS_KEYS, TEACHER_LAYERS_KEYS, TEACHER_STEM_KEYS

    train = cfg.train
    scales = {"lora": 1.0, "patch_embedding": train.lr_scale_patch_embedding, "front_end": train.lr_scale_front_end,
              "teacher_blocks": train.lr_scale_teacher_blocks, "heads": train.lr_scale_heads,
              "speaker_adversary": train.lr_scale_heads}
    parts: dict[str, list] = {name: [] for name in scales}
    for name, param in student.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith(TEACHER_LAYERS_KEYS):  # the copied layers themselves (their projection: front_end)
            part = "teacher_blocks"
        elif name.startswith((FRONT_END_KEYS, *TEACHER_STEM_KEYS, *TEACHER_BLOCKS_KEYS)):
            part = "front_end"
        elif name.startswith(("patch_embedding.", "heads.", "speaker_adversary.")):
            part = name.split(".")[0]
        else:
            part = "lora"
        parts[part].append(param)
    return [{"params": params, "lr": train.lr * scales[name], "name": name}
            for name, params in parts.items() if params]


def deepspeed_config(cfg: AuraConfig, bf16: bool, max_lrs: list[float] | None = None) -> dict[str, Any]:
    """The DeepSpeed config for this run (micro batch per worker, no gradient accumulation); ``max_lrs``
    gives each optimizer group its peak learning rate (default: ``train.lr`` for all)."""
    zero: dict[str, Any] = {"stage": cfg.train.zero_stage}
    if cfg.train.zero_stage == 3:
        # Small trainable tensors stay gathered; the frozen base is partitioned.
        zero.update({"stage3_param_persistence_threshold": 1e4, "stage3_gather_16bit_weights_on_model_save": False})
    return {
        "train_micro_batch_size_per_gpu": cfg.train.batch_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": cfg.train.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        "scheduler": {
            "type": "WarmupDecayLR",
            "params": {
                "total_num_steps": cfg.train.max_steps,
                "warmup_min_lr": 0.0,
                "warmup_max_lr": max_lrs if max_lrs is not None else cfg.train.lr,
                "warmup_num_steps": max(cfg.train.warmup_steps, 1),
                "warmup_type": "linear",
            },
        },
    }


def starting_parts(cfg: AuraConfig, stage: str) -> Path | None:
    """The trained parts ``stage`` starts from, ``cfg`` being :func:`pipeline.train.launch.stage_config`'s:
    ``train.init_from`` (stage 2: ``train.tasks_init_from``) when set; else none for stage 1 (a fresh student)
    and the stage-1 export for stage 2. Raises ``FileNotFoundError`` naming what is missing and how to give it."""
    start = cfg.train.init_from
    if start is not None:
        if not Path(start).is_file():
            raise FileNotFoundError(f"train.{'tasks_' if stage == 'tasks' else ''}init_from: no student export at {start}")
        return Path(start)
    if stage != "tasks":
        return None
    stage1 = RunLayout.of(cfg).student("distill")
    if not stage1.exists():
        raise FileNotFoundError(f"stage 2 starts from stage 1: no export at {stage1}; run `aura train --stage distill` "
                                "(or set train.tasks_init_from)")
    return stage1


class StudentRecipe:
    """The training loop and its bookkeeping; a subclass is one training method (see the module docstring)."""

    stage: str  # the run directory's name under paths.checkpoints, and the metrics' label

    def __init__(self, cfg: AuraConfig, run_dir: str | Path):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.layout = RunLayout(self.run_dir.parent)  # run_dir is <paths.checkpoints>/<stage>
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.step = 0

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        import deepspeed

        from pipeline.store import reference_target_stats

        cfg = self.cfg
        if not use_cuda():
            # DeepSpeed's shared-memory all-reduce, a C++ op compiled on a host's first run (~50 s on 2 cores),
            # serves only its inference all-reduce; training reduces through torch.distributed. Not built.
            deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        if not dist.is_initialized():
            with quiet_stdout():
                deepspeed.init_distributed(dist_backend="nccl" if use_cuda() else "gloo")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = torch.device("cuda", torch.cuda.current_device()) if use_cuda() else torch.device("cpu")
        self.bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and use_cuda())
        self._dtype = torch.bfloat16 if self.bf16 else torch.float32
        torch.manual_seed(cfg.train.seed)

        self.store = self._open_store()
        self.prepare_targets = TargetPreparer(self.store, cfg.student, self.device, stats=reference_target_stats(cfg))
        self.data = training_data(cfg, self.store, tasks=self.train_tasks())
        self.data.check_complete()
        self.heldout = self._monitor_data()
        self.sampler = LengthGroupedSampler(self.data.shard_lengths, cfg.train.batch_size, self.rank, self.world,
                                            seed=cfg.train.seed, epoch_shards=self.data.epoch_shards)
        if self.rank == 0 and isinstance(self.data, ReplayMix):
            lengths = self.data.shard_lengths()
            first = self.data.epoch_shards(lengths, 0)
            replayed = sum(len(lengths[s]) for s in first if ReplayMix.is_replayed(s))
            print(f"replaying {cfg.train.replay_from}: {replayed} of its {len(self.data.replayed.keys())} training "
                  f"clips in epoch 1, beside {len(self.data.own.keys())} of this run's", flush=True)

        self.student = self.build_student()
        groups = optimizer_groups(self.student, cfg)
        optimizer = torch.optim.AdamW(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        with quiet_stdout():
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=self.student, optimizer=optimizer,
                config=deepspeed_config(cfg, self.bf16, [g["lr"] for g in groups]),
            )
        found = latest_checkpoint(self.ckpt_dir)
        if found is not None:
            state = load_checkpoint(self.engine, found, self.rank)
            self.step = checkpoint_step(found)
            self.sampler.load_state_dict(state["sampler"])
            if self.rank == 0:
                print(f"resumed from {found} at step {self.step}", flush=True)
        elif self.rank == 0 and cfg.train.init_from is not None:
            print(f"{self.stage}: starting from the trained parts in {cfg.train.init_from}", flush=True)
        if self.rank == 0:
            self._open_logs()

    # ------------------------------------------------------------------ what a recipe defines
    def train_tasks(self) -> list[str] | None:
        """The manifest tasks this recipe trains on (None: every utterance)."""
        return None

    def needs_targets(self) -> bool:
        """Whether training batches carry the teacher's cached states."""
        return True

    def compute_loss(self, batch) -> tuple[torch.Tensor, dict[Any, dict[str, torch.Tensor]]]:
        """``(loss, per-part values)`` of one batch; ``per_part[name]["loss"]`` (and ``["cosine"]``) are logged."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Metrics on the monitored split (reduced over ranks), written to ``eval.csv`` at every eval step."""
        raise NotImplementedError

    # ------------------------------------------------------------------ setup parts

    def _monitor_data(self) -> TrainingData:
        """The split watched during training: ``train.eval_split`` (dev: choices are made on it, never on the
        held-out split). A corpus without dev rows falls back to the replayed corpus's dev rows
        (``train.replay_from``: what replay is there to keep), else to held-out, and says so."""
        split = self.cfg.train.eval_split
        data = TrainingData(ShardSet(self.cfg.paths.shards), self.store, split=split, tasks=self.train_tasks())
        if data.keys() or split != "dev":
            return data
        if self.cfg.train.replay_from is not None:
            replayed = replayed_corpus(self.cfg, "dev", self.train_tasks())
            if replayed.keys():
                if self.rank == 0:
                    print("note: the corpus has no dev rows; training metrics are on the replayed corpus's", flush=True)
                return replayed
        if self.rank == 0:
            print("note: the corpus has no dev rows; training metrics are on the held-out split", flush=True)
        return TrainingData(ShardSet(self.cfg.paths.shards), self.store, split="heldout", tasks=self.train_tasks())

    def _open_store(self):
        from pipeline.store import open_store_for

        store = open_store_for(self.cfg, mode="r")
        if self.rank == 0 and store is not None:
            pending = ShardSet(self.cfg.paths.shards).shard_names()
            missing = sorted(set(pending) - store.committed_shards())
            if missing:
                print(f"note: {len(missing)} shard(s) not in the store yet are left out: {missing[:3]}", flush=True)
        return store

    def build_student(self):
        """The student on the bundled LLM, shaped by the store's fingerprint (teacher layers, width, mels), with
        the trained parts it starts from loaded (:func:`starting_parts`: ``init_from``, or
        stage 1's export for stage 2). A checkpoint of this run, when there is one, replaces them (resume)."""
        from pipeline.models.sources import load_llm
        from pipeline.models.student import AuraStudent, parts_ctc_head
        from pipeline.prompts import audio_prefix_ids

        fp = self.store.fingerprint
        llm, self.tokenizer = load_llm(self.cfg.models.llm, self.cfg.models.cache_dir,
                                       dtype=torch.bfloat16 if self.bf16 else torch.float32,
                                       trust_remote_code=self.cfg.models.trust_remote_code)
        self.audio_prefix = audio_prefix_ids(self.tokenizer)
        self._spoken_labels: dict[tuple[str, str], list[int]] = {}
        start = starting_parts(self.cfg, self.stage)
        # A CTC head of the starting parts stays (for the read-out and the CTC metrics) in a run whose config trains
        # none; the stage freezes a head no loss reaches.
        carried = parts_ctc_head(start) if start is not None and self.cfg.student.ctc_weight == 0 else None
        student_cfg = self.cfg.student
        if carried is not None:  # the head as it was made (its vocabulary), whatever this config says
            student_cfg = student_cfg.model_copy(update={k: carried[k] for k in ("ctc_vocabulary", "ctc_upsample")})
        student = AuraStudent.from_llm(llm, student_cfg, teacher_layers=fp.layers, teacher_width=fp.width,
                                       n_mels=fp.mel.n_mels, pooling=fp.pooling * self.prepare_targets.pool,
                                       carried_ctc_layer=carried and carried["ctc_layer"])
        if student.patch_embedding.teacher_stem is not None:
            # From the teacher itself (parts or checkpoints that carry the stem load over it unchanged).
            from pipeline.models.sources import load_whisper

            whisper, _, _ = load_whisper(self.cfg.models.teacher, self.cfg.models.cache_dir,
                                         trust_remote_code=self.cfg.models.trust_remote_code)
            student.patch_embedding.copy_whisper_stem(
                whisper.model.encoder, layers=self.cfg.student.teacher_blocks_weights == "teacher")
            del whisper
        if student.patch_embedding.teacher_blocks is not None:
            last = len(student.patch_embedding.teacher_blocks)
            if last not in fp.layers:
                raise ValueError(f"student.teacher_blocks={last} standardises with teacher layer {last}'s statistics, "
                                 f"but the store holds layers {list(fp.layers)}")
            stats = self.prepare_targets.stats  # the targets' own (train.target_stats_from, or the store's)
            row = stats.positions([last])[0]
            student.patch_embedding.set_blocks_statistics(stats.mean[row], stats.std[row])
            if self.cfg.train.lr_scale_teacher_blocks:  # the student's own from here on (optimizer_groups)
                student.patch_embedding.teacher_blocks.requires_grad_(True)
        if start is not None:
            added = student.load_trainable(start, new_parts=True)
            if added and self.rank == 0:
                print(f"note: {' and '.join(added)}: not in {start}, so trained from initialisation", flush=True)
        return student

    # ------------------------------------------------------------------ logs
    def _open_logs(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.layout.metrics(self.stage)
        self.eval_path = self.layout.eval_log(self.stage)
        # After a resume, rows past the checkpoint belong to the lost attempt: drop them.
        for path in (self.metrics_path, self.eval_path):
            if path.exists():
                with open(path, newline="") as f:
                    rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
                if rows:
                    with open(path, "w", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                        writer.writeheader()
                        writer.writerows(rows)
                else:
                    path.unlink()
        self.tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1)

    def _append_csv(self, path: Path, row: dict[str, Any]) -> None:
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    # ------------------------------------------------------------------ steps
    def _to_device(self, batch):
        if batch.targets is None:
            return None
        return self.prepare_targets(batch.targets, batch.target_lengths)[0]

    def spoken_labels(self, batch, head) -> list[list[int]]:
        """What each clip of ``batch`` says as ``head``'s labels (LLM token ids or characters: the CTC targets),
        made once per key and vocabulary."""
        from pipeline.prompts import spoken_text

        for key, row in zip(batch.keys, batch.rows):
            if (head.vocabulary, key) not in self._spoken_labels:
                self._spoken_labels[head.vocabulary, key] = head.labels(spoken_text(row), self.tokenizer)
        return [self._spoken_labels[head.vocabulary, key] for key in batch.keys]

    def _add_ctc(self, loss, per_layer, batch, out, weight: float, character_weight: float = 0.0):
        """``loss + weight x CTC loss`` when the forward returned CTC log-probs (``per_layer["ctc"]`` logs it): not
        without a CTC head, nor in a training step of a stage that does not train the head it carries. With
        ``character_weight`` also that times the second, character head's CTC loss (``per_layer["character_ctc"]``)."""
        from pipeline.models.ctc import ctc_token_loss

        if "ctc_log_probs" not in out:
            return loss, per_layer
        student = self.engine.module
        ctc = ctc_token_loss(out["ctc_log_probs"], out["ctc_lengths"], self.spoken_labels(batch, student.ctc_head))
        per_layer["ctc"] = {"loss": ctc}
        loss = loss + weight * ctc
        if character_weight and "character_ctc_log_probs" in out:
            characters = ctc_token_loss(out["character_ctc_log_probs"], out["character_ctc_lengths"],
                                        self.spoken_labels(batch, student.character_ctc_head))
            per_layer["character_ctc"] = {"loss": characters}
            loss = loss + character_weight * characters
        return loss, per_layer

    def _mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        names = sorted(values)
        tensor = torch.tensor([values[n] for n in names], dtype=torch.float64)
        dist.all_reduce(tensor)
        return {n: float(v) / self.world for n, v in zip(names, tensor)}

    def heldout_batches(self, with_targets: bool = True):
        """This rank's share of the monitored split (at most ``train.eval_samples`` utterances, spread over
        it) as ``(batch, weight)``; every rank yields the same number of batches (ZeRO-3 needs all ranks in
        every forward), padding with weight 0."""
        keys = spread_evenly(self.heldout.keys(), self.cfg.train.eval_samples)
        mine = keys[self.rank :: self.world]
        size = self.cfg.train.batch_size
        per_rank = -(-len(keys) // self.world)
        for b in range(-(-per_rank // size)):
            chunk = mine[b * size : (b + 1) * size]
            yield self.heldout.load(chunk or keys[:1], with_targets=with_targets), len(chunk)

    def load_training_batch(self, plan):
        """A planned batch of training clips; ``train.speaker_shift`` of them in another speaker's voice and
        ``train.equalizer`` of them recoloured, each drawn from the seed, the epoch and the clip (so a resumed run
        hears what the uninterrupted one did)."""
        batch = self.data.load(plan.keys, with_targets=self.needs_targets())
        cfg = self.cfg.train
        changes = []  # (seed tag, odds, draw, apply), in the order they are applied
        if cfg.speaker_shift > 0:
            changes.append(("aura-speaker-shift", SpeakerShiftOdds(cfg.speaker_shift, cfg.speaker_formant_range,
                                                                   cfg.speaker_pitch_range),
                            draw_speaker_shift, apply_speaker_shift))
        if cfg.equalizer > 0:
            changes.append(("aura-equalizer", EqualizerOdds(cfg.equalizer, cfg.equalizer_max_db), draw_equalizer,
                            apply_equalizer))
        for tag, odds, draw, apply in changes:
            for i, key in enumerate(batch.keys):
                change = draw(random.Random(f"{tag}:{cfg.seed}:{plan.epoch}:{key}"), odds)
                if change is not None:
                    batch.audio[i] = torch.from_numpy(apply(batch.audio[i].numpy(), change))
        batch.epoch = plan.epoch
        return batch

    def student_mel(self, batch, audio=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mel, token_lengths)`` the student hears for ``batch`` (or ``audio`` in its place). A training batch's
        clips get ``train.spec_*_masks`` SpecAugment masks, drawn from the seed, the epoch and the clip (a resumed
        run hears what the uninterrupted one did); evaluation batches and replaced audio stay as they are."""
        embedding = self.engine.module.patch_embedding
        mel, token_lengths = embedding.mel_batch(batch.audio if audio is None else audio)
        cfg = self.cfg.train
        if audio is None and batch.epoch is not None and (cfg.spec_freq_masks or cfg.spec_time_masks):
            odds = SpecMaskOdds(cfg.spec_freq_masks, cfg.spec_freq_width, cfg.spec_time_masks, cfg.spec_time_share)
            masked = []
            for m, key, tokens in zip(mel, batch.keys, token_lengths.tolist()):
                frames = tokens * embedding.stride
                rng = random.Random(f"aura-spec-masks:{cfg.seed}:{batch.epoch}:{key}")
                masked.append(apply_spec_masks(m, draw_spec_masks(rng, odds, m.shape[0], frames), frames))
            mel = torch.stack(masked)
        return mel, token_lengths

    def _reduce_weighted(self, sums: dict[str, float], count: float) -> dict[str, float]:
        names = sorted(sums)
        tensor = torch.tensor([sums[n] for n in names] + [count], dtype=torch.float64)
        dist.all_reduce(tensor)
        total = float(tensor[-1])
        return {n: float(v) / total for n, v in zip(names, tensor[:-1])} if total else {}

    def train(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg.train
        if self.step >= cfg.max_steps:
            if self.rank == 0:
                print(f"already trained to step {self.step} (max_steps={cfg.max_steps})", flush=True)
            return
        if self.step == 0:
            self._log_eval()
        self.engine.train()
        plans = iter(self.sampler)
        prefetch = Prefetcher(plans, self.load_training_batch)
        # Under Ray the bar reaches the terminal as log lines, one per refresh: refresh every 20 s there.
        bar = tqdm(total=cfg.max_steps, initial=self.step, desc=f"train ({self.stage})", disable=self.rank != 0,
                   mininterval=0.1 if sys.stderr.isatty() else 20.0)
        try:
            while self.step < cfg.max_steps:
                wait_before = prefetch.wait_seconds
                t0 = time.perf_counter()
                plan, batch = next(prefetch)
                loss, per_layer = self.compute_loss(batch)
                self.engine.backward(loss)
                self.engine.step()
                self.step += 1
                step_time = time.perf_counter() - t0
                self._last_plan = plan
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    self._log_step(loss, per_layer, batch, step_time, prefetch.wait_seconds - wait_before, plan)
                bar.update(1)
                if self.step % cfg.eval_every == 0 and self.step != cfg.max_steps:
                    self._log_eval()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.max_steps:
                    self.save_checkpoint()
                self._maybe_inject_fault()
            self._log_eval()
        finally:
            prefetch.close()
            bar.close()
        self.export()

    def _maybe_inject_fault(self) -> None:
        """Test hook: ``AURA_FAULT_KILL_AT_STEP=k`` SIGKILLs rank ``AURA_FAULT_RANK`` (default 0) after step k."""
        kill_at = os.environ.get("AURA_FAULT_KILL_AT_STEP")
        marker = os.environ.get("AURA_FAULT_ONCE_FILE")
        if kill_at and int(kill_at) == self.step and self.rank == int(os.environ.get("AURA_FAULT_RANK", "0")):
            if marker:
                if Path(marker).exists():
                    return
                Path(marker).write_text("fired")
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def _log_step(self, loss, per_layer, batch, step_time, wait, plan) -> None:
        values = {"loss": float(loss.detach())}
        for layer, v in per_layer.items():
            values[f"loss_L{layer}"] = float(v["loss"].detach())
            for name, short in (("cosine", "cos"), ("accuracy", "acc")):
                if name in v:
                    values[f"{short}_L{layer}"] = float(v[name].detach())
        values["tokens"] = float(self._last_tokens)  # sequence positions this rank ran (text + audio)
        values = self._mean_over_ranks(values)
        tokens = values.pop("tokens") * self.world
        if self.rank != 0:
            return
        audio_s = sum(len(a) for a in batch.audio) / WHISPER_SAMPLE_RATE * self.world
        row = {
            "step": self.step,
            "epoch": plan.epoch,
            **{k: f"{v:.8f}" for k, v in values.items()},
            "lr": f"{self.scheduler.get_last_lr()[0]:.8g}",
            "step_time_s": f"{step_time:.4f}",
            "loader_wait_s": f"{wait:.4f}",
            "audio_s_per_s": f"{audio_s / step_time:.2f}",
            "tokens": int(round(tokens)),
            "tokens_per_s": f"{tokens / step_time:.1f}",
        }
        grad_norm = self.engine.get_global_grad_norm()  # before clipping; last, so older runs' columns still line up
        if grad_norm is not None:
            row["grad_norm"] = f"{float(grad_norm):.6g}"
            self.tb.add_scalar("train/grad_norm", float(grad_norm), self.step)
        self._append_csv(self.metrics_path, row)
        for name, value in values.items():
            self.tb.add_scalar(f"train/{name}", value, self.step)
        self.tb.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.step)
        self.tb.add_scalar("train/audio_s_per_s", audio_s / step_time, self.step)

    def _log_eval(self) -> None:
        result = self.evaluate()
        if self.rank != 0 or not result:
            return
        self._append_csv(self.eval_path, {"step": self.step, **{k: f"{v:.6f}" for k, v in result.items()}})
        for name, value in result.items():
            self.tb.add_scalar(f"heldout/{name}", value, self.step)
        shown = {k: v for k, v in result.items() if not k.startswith(("const_", "posmean_", "ctc_loss", "character_ctc_loss"))
                 or k.endswith("_mean")}
        print(f"step {self.step}: {self.heldout.split} " + " ".join(f"{k}={v:.3f}" for k, v in shown.items()), flush=True)

    # ------------------------------------------------------------------ checkpoints and export
    def save_checkpoint(self) -> Path:
        rank_state = {"sampler": self._last_plan.state_after()}
        extra = {"config.yaml": self.cfg.to_yaml().encode()} if self.rank == 0 else None
        path = save_checkpoint(self.engine, self.ckpt_dir, self.step, rank_state, self.cfg.train.keep_last, extra)
        # A small export per checkpoint, kept when the checkpoint rotates out: the learning curves read them.
        self._write_student(self.layout.step_student(self.stage, self.step))
        return path

    def _write_student(self, path: Path) -> None:
        """The trainable parts (gathered under ZeRO-3) to one safetensors file, written by rank 0."""
        import deepspeed

        student = self.engine.module
        params = [p for p in student.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(params, enabled=self.cfg.train.zero_stage == 3):
            if self.rank == 0:
                partial = path.with_name(path.name + ".partial")
                student.save_trainable(partial)
                os.replace(partial, path)  # never a half-written export under the final name
        dist.barrier()

    def export(self) -> None:
        """Trainable parts (safetensors) + config, for the next stage and for inference."""
        out = self.layout.export_dir(self.stage)
        self._write_student(self.layout.student(self.stage))
        if self.rank == 0:
            (out / "config.yaml").write_text(self.cfg.to_yaml())
            (out / "store_fingerprint.json").write_text(self.store.fingerprint.model_dump_json(indent=1))

    def cleanup(self, clean_exit: bool = True) -> None:
        if getattr(self, "rank", None) == 0 and hasattr(self, "tb"):
            self.tb.close()
        if clean_exit and dist.is_initialized():
            dist.barrier()
