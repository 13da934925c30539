"""The bridge recipe: train the bridge baseline's projector for AuRA's stage-2 budget.

Setup (the training split's keys, Whisper's final-layer states from the feature store, the frozen LLM,
a fresh :class:`~pipeline.models.bridge.BridgeProjector`), train (AdamW with linear warm-up, LM loss on the
answers, :func:`~pipeline.models.bridge.bridge_loss`), save (the projector as safetensors, ``metrics.csv``
beside it). The budget is AuRA's stage 2: optimizer steps x global batch (:func:`stage2_budget`), so the
comparison in ``aura eval`` is at equal examples seen. The encoder is not rerun when the store holds its
final layer.

    >>> result = train_bridge(cfg)  # writes <checkpoints>/bridge/projector.safetensors  # doctest: +SKIP
    >>> result.losses[0], result.losses[-1]                                               # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from pipeline.config import AuraConfig
from pipeline.runtime import load_frozen_llm, resolve_device, resolve_dtype
from pipeline.layout import RunLayout
from pipeline.models.bridge import BridgeProjector, bridge_loss, save_projector
from pipeline.prompts import instruction_for, prompt_ids
from pipeline.train.targets import pad_targets

log = logging.getLogger(__name__)


def stage2_budget(cfg: AuraConfig) -> tuple[int, int]:
    """``(optimizer steps, global batch size)`` of AuRA's stage 2 under ``cfg``: the bridge's budget."""
    from pipeline.train.launch import stage_config

    return stage_config(cfg, "tasks").train.max_steps, cfg.train.batch_size * cfg.train.num_workers


@dataclass
class BridgeTrainResult:
    path: Path
    steps: int
    batch_size: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    source: str = "store"  # where the teacher states came from: store | live
    replayed: int = 0  # examples drawn from the replayed corpus (``train.replay_from``)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "steps": self.steps, "batch_size": self.batch_size, "seconds": self.seconds,
                "first_loss": self.losses[0] if self.losses else None,
                "last_loss": self.losses[-1] if self.losses else None, "source": self.source,
                "replayed": self.replayed}


class _TeacherStates:
    """Final-layer Whisper states for training keys: from the store when it holds that layer, else live."""

    def __init__(self, cfg: AuraConfig, store, final_layer: int):
        self.store, self.final_layer = store, final_layer
        self.teacher = None
        self.source = "store"
        if store is None or final_layer not in store.fingerprint.layers:
            from pipeline.models.teacher import WhisperTeacher, window_options

            settings = store.fingerprint if store is not None else cfg.store
            log.warning("the feature store does not hold Whisper's final layer %d; the bridge runs the encoder "
                        "live in training (slower)", final_layer)
            self.teacher = WhisperTeacher.from_spec(cfg.models.teacher, cfg.models.cache_dir, layers=[final_layer],
                                                    pooling=settings.pooling, **window_options(settings))
            self.source = "live"

    def batch(self, keys: Sequence[str], data) -> tuple[torch.Tensor, torch.Tensor]:
        """The states of ``keys`` of ``data`` (a :class:`~pipeline.train.data.TrainingData` or a replay mix, whose
        replayed clips are read from their own corpus's store), zero padded, with their lengths."""
        if self.teacher is None:
            arrays = [source.store.read(key, layers=[self.final_layer]) for source, key in map(data.source, keys)]
        else:
            arrays = [a[:1] for a in self.teacher.encode([data.audio(k) for k in keys])]
        states, lengths = pad_targets(arrays)  # (B, 1 layer, frames, width)
        return states[:, 0], lengths


def teacher_final_layer(cfg: AuraConfig) -> tuple[int, int]:
    """``(index of Whisper's last encoder layer, encoder width)`` read from the teacher's config."""
    from transformers import WhisperConfig

    from pipeline.models.sources import resolve_model_dir

    wcfg = WhisperConfig.from_pretrained(resolve_model_dir(cfg.models.teacher, cfg.models.cache_dir))
    return wcfg.encoder_layers, wcfg.d_model


def train_bridge(cfg: AuraConfig, out_path: str | Path | None = None, steps: int | None = None,
                 batch_size: int | None = None, stack: int = 4, hidden: int | None = None, lr: float | None = None,
                 device=None, dtype=None, seed: int | None = None, progress: bool = True,
                 store=None) -> BridgeTrainResult:
    """Train the bridge projector on the training split with the LM loss on the answers (frozen LLM).

    ``steps`` x ``batch_size`` default to AuRA's stage-2 budget (:func:`stage2_budget`); ``lr`` to
    ``train.lr`` with ``train.warmup_steps`` of linear warm-up. Teacher states come from the feature
    store (Whisper's final layer), so the encoder is not rerun. With ``train.replay_from``, each pass
    over the data mixes in the replayed corpus's clips as AuRA's recipes do (the same shards drawn per epoch), so
    the two train on the same data. Writes the projector (safetensors) and ``metrics.csv`` (step, loss)
    beside it; returns the loss curve.
    """
    from tqdm import tqdm

    from pipeline.store import open_store_for
    from pipeline.train.data import ReplayMix, training_data

    budget_steps, budget_batch = stage2_budget(cfg)
    steps = steps or budget_steps
    batch_size = batch_size or budget_batch
    lr = lr or cfg.train.lr
    seed = cfg.train.seed if seed is None else seed
    out_path = Path(out_path) if out_path is not None else RunLayout.of(cfg).projector
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)

    store = store if store is not None else open_store_for(cfg, mode="r")
    data = training_data(cfg, store, tasks=["transcribe", "spoken_qa"])
    data.check_complete()
    final_layer, teacher_width = teacher_final_layer(cfg)
    states_source = _TeacherStates(cfg, store, final_layer)

    llm, tokenizer = load_frozen_llm(cfg, device, dtype)
    torch.manual_seed(seed)
    # float32 master weights (AdamW on bf16 weights loses small updates); its tokens are cast to the LLM's dtype
    projector = BridgeProjector(teacher_width, llm.config.hidden_size, stack, hidden).to(device=device)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=cfg.train.weight_decay)
    warmup = cfg.train.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0)
    prompts = {t: prompt_ids(tokenizer, instruction_for(t)) for t in ("transcribe", "spoken_qa")}

    rng = random.Random(seed)
    lengths_by_shard = data.shard_lengths()
    epoch, order = 0, []
    losses: list[float] = []
    replayed = 0
    started = time.perf_counter()
    projector.train()
    for _ in tqdm(range(steps), desc="bridge: train projector", disable=not progress):
        batch_keys = []
        while len(batch_keys) < batch_size:
            if not order:
                order = [key for shard in data.epoch_shards(lengths_by_shard, epoch)
                         for key, _ in lengths_by_shard[shard]]
                rng.shuffle(order)
                epoch += 1
            batch_keys.append(order.pop())
        replayed += sum(map(ReplayMix.is_replayed, batch_keys))
        states, lengths = states_source.batch(batch_keys, data)
        loss = bridge_loss(llm, tokenizer, projector, states, lengths, [data.rows[k] for k in batch_keys],
                           prompts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - started
    fp = store.fingerprint
    meta = {"teacher": cfg.models.teacher, "teacher_layer": final_layer, "pooling": fp.pooling,
            "llm": cfg.models.llm, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
            "final_loss": losses[-1] if losses else None, "teacher_source": states_source.source,
            "replay_from": str(cfg.train.replay_from) if cfg.train.replay_from else None,
            "replayed_examples": replayed}
    save_projector(projector, out_path, meta)
    with open(out_path.parent / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss"])
        writer.writerows([i + 1, f"{v:.6f}"] for i, v in enumerate(losses))
    return BridgeTrainResult(out_path, steps, batch_size, losses, seconds, states_source.source, replayed)
