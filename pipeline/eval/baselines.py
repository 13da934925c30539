"""The systems AuRA is compared with, in one harness: cascade, bridge and the text-only upper bound.

Every system answers one request at a time through :meth:`EvalSystem.answer` and returns an
:class:`~pipeline.infer.GenerationResult` (text, tokens, latency, time to first token), and every
LLM decodes with the same :func:`~pipeline.infer.greedy_decode`, so the systems differ only in what
they put in front of the answer:

``aura`` (:class:`AuraSystem`)
    Encoder-free: audio -> patch embedding -> LLM with LoRA merged (:class:`~pipeline.infer.EncoderFreeModel`).
``bridge`` (:class:`BridgeSystem`)
    Whisper encoder (run live) -> :class:`BridgeProjector` (stack ``k`` consecutive final-layer
    frames, 2-layer MLP to the LLM width) -> the same frozen LLM with the same chat prompt layout
    as AuRA (:mod:`pipeline.prompts`), the projector's tokens in place of AuRA's audio tokens.
    Trained by :func:`train_bridge` on the training split with the LM loss on the answers, for the
    same budget as AuRA's stage 2 (optimizer steps x global batch, :func:`stage2_budget`), from the
    final-layer teacher states cached in the feature store, so Whisper is not rerun in training.
``cascade`` (:class:`CascadeSystem`)
    Whisper (encoder + decoder) transcribes; for transcription that transcript is the output, for
    spoken QA the same frozen LLM answers from it: the user turn is ``{transcript}\\n{instruction}``,
    i.e. AuRA's layout with the transcript where the audio tokens go.
``text`` (:class:`TextOnlySystem`)
    The upper bound: the frozen LLM given the reference transcript and the instruction, same layout.

Usage::

    >>> result = train_bridge(cfg)  # writes <checkpoints>/bridge/projector.safetensors  # doctest: +SKIP
    >>> bridge = BridgeSystem.from_config(cfg)  # Whisper encoder + projector + LLM  # doctest: +SKIP
    >>> bridge.answer(audio, "Transcribe the audio.").text  # doctest: +SKIP
    >>> cascade = CascadeSystem.from_config(cfg)  # doctest: +SKIP
    >>> cascade.answer(audio, instruction_for("spoken_qa"), task="spoken_qa").text  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import AuraConfig
from pipeline.data.mel import WHISPER_SAMPLE_RATE
from pipeline.infer import (
    GenerationResult,
    GreedyOutput,
    ensure_mask_attention,
    greedy_decode,
    padding_token_id,
    resolve_device,
    resolve_dtype,
    stop_token_ids,
    text_only_generate,
)
from pipeline.layout import RunLayout
from pipeline.models.sources import quiet_transformers
from pipeline.models.student import IGNORE_INDEX, layout_speech_batch
from pipeline.prompts import answer_ids, instruction_for, prompt_ids, target_for, task_of_instruction

log = logging.getLogger(__name__)

from pipeline.eval import SYSTEMS  # noqa: E402  (re-exported)
SYSTEM_LABELS = {"aura": "AuRA (encoder-free)", "bridge": "Bridge (Whisper enc + projector)",
                 "cascade": "Cascade (Whisper -> LLM)", "text": "Text-only (reference transcript)"}
_FORMAT_VERSION = 1


def text_prompt(transcript: str, instruction: str) -> str:
    """The user turn of the text systems: AuRA's ``<audio>\\n{instruction}`` with the text for the audio."""
    return f"{transcript}\n{instruction}"


def stage2_budget(cfg: AuraConfig) -> tuple[int, int]:
    """``(optimizer steps, global batch size)`` of AuRA's stage 2 under ``cfg``: the bridge's budget."""
    from pipeline.train.launch import stage_config

    return stage_config(cfg, "tasks").train.max_steps, cfg.train.batch_size * cfg.train.num_workers


# ------------------------------------------------------------------------------------------------
# Systems


class EvalSystem:
    """One request at a time; see the module docstring."""

    name = "system"
    #: what the system needs from a request: the audio, or the reference transcript (text-only)
    needs_audio = True

    def answer(self, audio: np.ndarray | None, instruction: str, task: str = "transcribe",
               transcript: str | None = None, max_new_tokens: int = 48) -> GenerationResult:
        raise NotImplementedError

    def answer_batch(self, audios: Sequence[np.ndarray], instructions: Sequence[str],
                     max_new_tokens: int = 48) -> list[GenerationResult]:
        """Answers to several requests, in order; systems that decode requests together override this."""
        return [self.answer(a, i, task=task_of_instruction(i), max_new_tokens=max_new_tokens)
                for a, i in zip(audios, instructions)]

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name}


class AuraSystem(EvalSystem):
    """The encoder-free AuRA model (no Whisper loaded)."""

    name = "aura"

    def __init__(self, model):
        self.model = model

    @classmethod
    def from_config(cls, cfg: AuraConfig, export_path: str | Path | None = None, device=None, dtype=None) -> "AuraSystem":
        from pipeline.infer import EncoderFreeModel

        return cls(EncoderFreeModel.from_config(cfg, export_path=export_path, device=device, dtype=dtype))

    @property
    def device(self) -> torch.device:
        return self.model.device

    def answer(self, audio, instruction, task="transcribe", transcript=None, max_new_tokens=48) -> GenerationResult:
        return self.model.generate([audio], [instruction], max_new_tokens=max_new_tokens)[0]

    def answer_batch(self, audios, instructions, max_new_tokens=48) -> list[GenerationResult]:
        return self.model.generate(list(audios), list(instructions), max_new_tokens=max_new_tokens)

    def describe(self) -> dict:
        meta = self.model.metadata
        return {"name": self.name, "export": meta.get("source_export"), "pooling": meta.get("pooling"),
                "llm": meta.get("llm_spec")}


class TextOnlySystem(EvalSystem):
    """The frozen LLM given the reference transcript and the instruction (the upper bound)."""

    name = "text"
    needs_audio = False

    def __init__(self, llm: nn.Module, tokenizer, llm_spec: str = ""):
        ensure_mask_attention(llm)
        self.llm, self.tokenizer, self.llm_spec = llm.eval(), tokenizer, llm_spec

    @classmethod
    def from_config(cls, cfg: AuraConfig, device=None, dtype=None) -> "TextOnlySystem":
        llm, tokenizer = load_frozen_llm(cfg, device, dtype)
        return cls(llm, tokenizer, cfg.models.llm)

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def answer(self, audio, instruction, task="transcribe", transcript=None, max_new_tokens=48) -> GenerationResult:
        if transcript is None:
            raise ValueError("the text-only system needs the reference transcript")
        return text_only_generate(self.llm, self.tokenizer, [text_prompt(transcript, instruction)], max_new_tokens)[0]

    def describe(self) -> dict:
        return {"name": self.name, "llm": self.llm_spec}


class _TokenTimer:
    """A ``generate(streamer=...)`` hook noting when the first generated token arrives."""

    def __init__(self, start: float):
        self.start, self.calls, self.first_token_s = start, 0, None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2 and self.first_token_s is None:  # the first call carries the decoder prompt
            self.first_token_s = time.perf_counter() - self.start

    def end(self) -> None:
        pass


class CascadeSystem(EvalSystem):
    """Whisper transcribes; the same frozen LLM answers from the transcript (transcription: Whisper's text)."""

    name = "cascade"

    def __init__(self, whisper: nn.Module, feature_extractor, whisper_tokenizer, llm: nn.Module, tokenizer,
                 specs: dict | None = None):
        ensure_mask_attention(llm)
        self.whisper, self.feature_extractor, self.whisper_tokenizer = whisper.eval(), feature_extractor, whisper_tokenizer
        self.llm, self.tokenizer = llm.eval(), tokenizer
        self.specs = specs or {}
        self._generation_config = None

    @classmethod
    def from_config(cls, cfg: AuraConfig, device=None, dtype=None) -> "CascadeSystem":
        from pipeline.models.sources import load_whisper

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        whisper, fe, wtok = load_whisper(cfg.models.teacher, cfg.models.cache_dir, dtype=dtype,
                                         trust_remote_code=cfg.models.trust_remote_code)
        whisper.to(device)
        llm, tokenizer = load_frozen_llm(cfg, device, dtype)
        return cls(whisper, fe, wtok, llm, tokenizer, {"whisper": cfg.models.teacher, "llm": cfg.models.llm})

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    @torch.inference_mode()
    def transcribe(self, audio: np.ndarray, max_new_tokens: int = 48, start: float | None = None
                   ) -> tuple[str, int, float | None]:
        """Whisper's greedy transcript: ``(text, tokens, seconds to its first token since start)``."""
        start = time.perf_counter() if start is None else start
        features = self.feature_extractor(np.asarray(audio, dtype=np.float32), sampling_rate=WHISPER_SAMPLE_RATE,
                                          return_tensors="pt").input_features
        whisper_dtype = next(self.whisper.parameters()).dtype
        features = features.to(self.whisper.device, whisper_dtype)
        timer = _TokenTimer(start)
        limit = max(1, min(max_new_tokens, self.whisper.config.max_target_positions // 2 - 4))
        if self._generation_config is None or self._generation_config.max_new_tokens != limit:
            gen = copy.deepcopy(self.whisper.generation_config)
            gen.max_length, gen.max_new_tokens, gen.num_beams, gen.do_sample = None, limit, 1, False
            self._generation_config = gen
        with quiet_transformers():
            ids = self.whisper.generate(features, generation_config=self._generation_config, streamer=timer)
        text = self.whisper_tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()
        return text, int(ids.shape[-1]), timer.first_token_s

    def answer(self, audio, instruction, task="transcribe", transcript=None, max_new_tokens=48) -> GenerationResult:
        start = time.perf_counter()
        text, whisper_tokens, first = self.transcribe(audio, max_new_tokens, start)
        whisper_s = time.perf_counter() - start
        if task == "transcribe":
            return GenerationResult(text=text, num_audio_tokens=0, prompt_tokens=0, new_tokens=whisper_tokens,
                                    latency_s=whisper_s, time_to_first_token_s=first if first is not None else whisper_s)
        result = text_only_generate(self.llm, self.tokenizer, [text_prompt(text, instruction)], max_new_tokens)[0]
        # The LLM cannot start before the transcript is complete.
        result.latency_s += whisper_s
        result.time_to_first_token_s += whisper_s
        return result

    def describe(self) -> dict:
        return {"name": self.name, **self.specs}


# ------------------------------------------------------------------------------------------------
# Bridge: projector, training, inference


class BridgeProjector(nn.Module):
    """Whisper final-layer frames ``(B, T, Dt)`` -> LLM tokens ``(B, ceil(T / stack), D)``.

    ``stack`` consecutive frames are concatenated (the last group zero-padded), then a 2-layer MLP
    (Linear -> GELU -> Linear) maps ``stack * Dt`` to the LLM width.

    >>> proj = BridgeProjector(teacher_width=8, llm_width=16, stack=4)
    >>> tokens, lengths = proj(torch.randn(2, 10, 8), torch.tensor([10, 5]))
    >>> tuple(tokens.shape), lengths.tolist()
    ((2, 3, 16), [3, 2])
    """

    def __init__(self, teacher_width: int, llm_width: int, stack: int = 4, hidden: int | None = None):
        super().__init__()
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        self.teacher_width, self.llm_width, self.stack = teacher_width, llm_width, stack
        self.hidden = hidden or llm_width
        self.mlp = nn.Sequential(nn.Linear(teacher_width * stack, self.hidden), nn.GELU(),
                                 nn.Linear(self.hidden, llm_width))

    def num_tokens(self, frames: int) -> int:
        return math.ceil(frames / self.stack)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, width = states.shape
        if width != self.teacher_width:
            raise ValueError(f"expected teacher width {self.teacher_width}, got {width}")
        if lengths is None:
            lengths = torch.full((batch,), frames, dtype=torch.long)
        lengths = lengths.to(states.device)
        # zero every frame past each sample's length, so a group is padded with zeros in any batch
        valid = torch.arange(frames, device=states.device)[None] < lengths[:, None]
        states = states * valid[..., None].to(states.dtype)
        groups = math.ceil(frames / self.stack)
        states = F.pad(states, (0, 0, 0, groups * self.stack - frames))
        stacked = states.reshape(batch, groups, self.stack * width)
        tokens = self.mlp(stacked.to(self.mlp[0].weight.dtype))
        return tokens, torch.div(lengths + self.stack - 1, self.stack, rounding_mode="floor")

    def config(self) -> dict:
        return {"teacher_width": self.teacher_width, "llm_width": self.llm_width, "stack": self.stack,
                "hidden": self.hidden}


def save_projector(projector: BridgeProjector, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the projector's weights and config (plus ``metadata``) to one safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in projector.state_dict().items()}
    meta = {"format_version": _FORMAT_VERSION, "projector": projector.config(), **(metadata or {})}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"aura_bridge": json.dumps(meta)})
    tmp.replace(path)
    return path


def load_projector(path: str | Path, device=None, dtype: torch.dtype | None = None) -> tuple[BridgeProjector, dict]:
    """``(projector, metadata)`` from a :func:`save_projector` file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("aura_bridge", "null"))
    if not meta:
        raise ValueError(f"{path} is not a bridge projector file (no 'aura_bridge' metadata)")
    projector = BridgeProjector(**meta["projector"])
    projector.load_state_dict(load_file(str(path)))
    projector.to(device=device or "cpu", dtype=dtype or torch.float32)
    return projector.eval(), meta


def default_projector_path(cfg: AuraConfig) -> Path:
    return RunLayout.of(cfg).projector


def load_frozen_llm(cfg: AuraConfig, device=None, dtype=None):
    from pipeline.models.sources import load_llm

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    llm, tokenizer = load_llm(cfg.models.llm, cfg.models.cache_dir, dtype=dtype,
                              trust_remote_code=cfg.models.trust_remote_code)
    ensure_mask_attention(llm)
    llm.to(device)
    for p in llm.parameters():
        p.requires_grad_(False)
    return llm.eval(), tokenizer


def bridge_embeddings(llm: nn.Module, input_ids: torch.Tensor, audio_mask: torch.Tensor,
                      tokens: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
    """Token embeddings with each sample's projector tokens written, in order, at its audio positions."""
    embed = llm.get_input_embeddings()
    valid = torch.arange(tokens.shape[1], device=tokens.device)[None] < token_lengths.to(tokens.device)[:, None]
    embeds = embed(input_ids.masked_fill(audio_mask, 0))
    return embeds.masked_scatter(audio_mask[..., None], tokens[valid].to(embeds.dtype))


def bridge_loss(llm: nn.Module, tokenizer, projector: BridgeProjector, states: torch.Tensor, lengths: torch.Tensor,
                rows: Sequence[dict], prompts: dict[str, tuple[list[int], list[int]]] | None = None) -> torch.Tensor:
    """LM loss (mean cross-entropy) on the answer tokens of ``rows`` given their teacher states ``(B, T, Dt)``."""
    device = llm.get_input_embeddings().weight.device
    tokens, token_lengths = projector(states.to(device), lengths.to(device))
    tasks = [row.get("task") or "transcribe" for row in rows]
    prompts = prompts or {t: prompt_ids(tokenizer, instruction_for(t)) for t in set(tasks)}
    layout = layout_speech_batch([prompts[t][0] for t in tasks], token_lengths.cpu(),
                                 after_audio=[prompts[t][1] for t in tasks],
                                 targets=[answer_ids(tokenizer, target_for(row)) for row in rows],
                                 pad_id=padding_token_id(tokenizer), padding_side="right")
    layout = {k: v.to(device) for k, v in layout.items()}
    embeds = bridge_embeddings(llm, layout["input_ids"], layout["audio_mask"], tokens, token_lengths)
    out = llm(inputs_embeds=embeds, attention_mask=layout["attention_mask"], use_cache=False)
    logits = out.logits[:, :-1].float()
    labels = layout["labels"][:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


@dataclass
class BridgeTrainResult:
    path: Path
    steps: int
    batch_size: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    source: str = "store"  # where the teacher states came from: store | live

    def to_dict(self) -> dict:
        return {"path": str(self.path), "steps": self.steps, "batch_size": self.batch_size, "seconds": self.seconds,
                "first_loss": self.losses[0] if self.losses else None,
                "last_loss": self.losses[-1] if self.losses else None, "source": self.source}


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

    def batch(self, keys: Sequence[str], audio_of) -> tuple[torch.Tensor, torch.Tensor]:
        if self.teacher is None:
            arrays = [self.store.read(k, layers=[self.final_layer])[0] for k in keys]
        else:
            arrays = [a[0] for a in self.teacher.encode([audio_of(k) for k in keys])]
        lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
        states = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[-1])
        for i, a in enumerate(arrays):
            states[i, : a.shape[0]] = torch.from_numpy(np.asarray(a, dtype=np.float32))
        return states, lengths


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
    store (Whisper's final layer), so the encoder is not rerun. Writes the projector (safetensors)
    and ``metrics.csv`` (step, loss) beside it; returns the loss curve.
    """
    from tqdm import tqdm

    from pipeline.data.shards import ShardSet
    from pipeline.store import open_store_for
    from pipeline.train.data import TrainingData

    budget_steps, budget_batch = stage2_budget(cfg)
    steps = steps or budget_steps
    batch_size = batch_size or budget_batch
    lr = lr or cfg.train.lr
    seed = cfg.train.seed if seed is None else seed
    out_path = Path(out_path) if out_path is not None else default_projector_path(cfg)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)

    store = store if store is not None else open_store_for(cfg, mode="r")
    data = TrainingData(ShardSet(cfg.paths.shards), store, split="train", tasks=["transcribe", "spoken_qa"])
    data.check_complete()
    keys = data.keys()
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
    order: list[str] = []
    losses: list[float] = []
    started = time.perf_counter()
    projector.train()
    for _ in tqdm(range(steps), desc="bridge: train projector", disable=not progress):
        batch_keys = []
        while len(batch_keys) < batch_size:
            if not order:
                order = list(keys)
                rng.shuffle(order)
            batch_keys.append(order.pop())
        states, lengths = states_source.batch(batch_keys, data.audio)
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
            "final_loss": losses[-1] if losses else None, "teacher_source": states_source.source}
    save_projector(projector, out_path, meta)
    with open(out_path.parent / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss"])
        writer.writerows([i + 1, f"{v:.6f}"] for i, v in enumerate(losses))
    return BridgeTrainResult(out_path, steps, batch_size, losses, seconds, states_source.source)


class BridgeSystem(EvalSystem):
    """Whisper encoder (live) -> trained projector -> frozen LLM, with AuRA's prompt layout."""

    name = "bridge"

    def __init__(self, teacher, projector: BridgeProjector, llm: nn.Module, tokenizer, metadata: dict | None = None):
        ensure_mask_attention(llm)
        self.teacher, self.projector, self.llm, self.tokenizer = teacher, projector.eval(), llm.eval(), tokenizer
        self.metadata = metadata or {}
        self.stop_ids = stop_token_ids(tokenizer, llm)
        self.pad_id = padding_token_id(tokenizer)
        self._prompts: dict[str, tuple[list[int], list[int]]] = {}

    @classmethod
    def from_config(cls, cfg: AuraConfig, projector_path: str | Path | None = None, device=None, dtype=None
                    ) -> "BridgeSystem":
        from pipeline.models.teacher import WhisperTeacher, window_options

        path = Path(projector_path) if projector_path is not None else default_projector_path(cfg)
        if not path.is_file():
            raise FileNotFoundError(f"no trained bridge projector at {path}; train it with `aura eval --train-bridge`")
        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        projector, meta = load_projector(path, device, dtype)
        teacher = WhisperTeacher.from_spec(cfg.models.teacher, cfg.models.cache_dir, layers=[meta["teacher_layer"]],
                                           pooling=meta["pooling"], device=device, dtype=dtype,
                                           trust_remote_code=cfg.models.trust_remote_code,
                                           **window_options(cfg.store))  # the window its store was written with
        llm, tokenizer = load_frozen_llm(cfg, device, dtype)
        return cls(teacher, projector, llm, tokenizer, {**meta, "path": str(path)})

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    def _prompt(self, instruction: str) -> tuple[list[int], list[int]]:
        if instruction not in self._prompts:
            self._prompts[instruction] = prompt_ids(self.tokenizer, instruction)
        return self._prompts[instruction]

    @torch.inference_mode()
    def answer(self, audio, instruction, task="transcribe", transcript=None, max_new_tokens=48) -> GenerationResult:
        start = time.perf_counter()
        states = torch.from_numpy(self.teacher.encode([np.asarray(audio, dtype=np.float32)])[0][0])  # (T, Dt)
        dtype = self.projector.mlp[0].weight.dtype
        tokens, token_lengths = self.projector(states[None].to(self.device, dtype))
        before, after = self._prompt(instruction)
        layout = layout_speech_batch([before], token_lengths.cpu(), after_audio=[after], pad_id=self.pad_id,
                                     padding_side="left")
        layout = {k: v.to(self.device) for k, v in layout.items()}
        embeds = bridge_embeddings(self.llm, layout["input_ids"], layout["audio_mask"], tokens, token_lengths)
        out: GreedyOutput = greedy_decode(self.llm, embeds, layout["attention_mask"], None,
                                          max_new_tokens=max_new_tokens, stop_token_ids=self.stop_ids,
                                          pad_token_id=self.pad_id, start_time=start)
        ids = out.token_ids[0]
        return GenerationResult(text=self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                                num_audio_tokens=int(token_lengths[0]), prompt_tokens=int(layout["attention_mask"].sum()),
                                new_tokens=len(ids), latency_s=out.finished_s[0],
                                time_to_first_token_s=out.first_token_s[0], finish_reason=out.finish_reasons[0],
                                token_ids=list(ids))

    def describe(self) -> dict:
        keys = ("path", "teacher", "teacher_layer", "pooling", "steps", "batch_size", "final_loss", "projector")
        return {"name": self.name, **{k: self.metadata.get(k) for k in keys}}


def load_system(name: str, cfg: AuraConfig, device=None, dtype=None, export_path=None, projector_path=None) -> EvalSystem:
    """Build one of :data:`SYSTEMS` from the config."""
    if name == "aura":
        return AuraSystem.from_config(cfg, export_path=export_path, device=device, dtype=dtype)
    if name == "bridge":
        return BridgeSystem.from_config(cfg, projector_path=projector_path, device=device, dtype=dtype)
    if name == "cascade":
        return CascadeSystem.from_config(cfg, device=device, dtype=dtype)
    if name == "text":
        return TextOnlySystem.from_config(cfg, device=device, dtype=dtype)
    raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS}")
