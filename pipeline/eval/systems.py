"""The systems ``aura eval`` compares, in one harness: AuRA, and the cascade, bridge and text-only baselines.

Every system answers one request at a time through :meth:`EvalSystem.answer` and returns an
:class:`~pipeline.decoding.GenerationResult` (text, tokens, latency, time to first token), and every
LLM decodes with the same :func:`~pipeline.decoding.greedy_decode`, so the systems differ only in what
they put in front of the answer:

``aura`` (:class:`AuraSystem`)
    Encoder-free: audio -> patch embedding -> LLM with LoRA merged (:class:`~pipeline.infer.EncoderFreeModel`).
``aura_ctc`` (:class:`AuraCTCSystem`)
    The same encoder-free student read through its CTC head (a student trained with ``student.ctc_weight > 0``):
    the transcript is the greedy CTC path over the LLM's own vocabulary at ``student.ctc_layer``; for spoken QA
    the same LLM with its adapters off then answers from that transcript, as the cascade does from Whisper's.
``bridge`` (:class:`BridgeSystem`)
    Whisper encoder (run live) -> :class:`~pipeline.models.bridge.BridgeProjector` (stack ``k`` consecutive final-layer
    frames, 2-layer MLP to the LLM width) -> the same frozen LLM with the same chat prompt layout
    as AuRA (:mod:`pipeline.prompts`), the projector's tokens in place of AuRA's audio tokens.
    Trained by :func:`pipeline.train.bridge.train_bridge` on the training split with the LM loss on the answers, for the
    same budget as AuRA's stage 2 (optimizer steps x global batch, :func:`pipeline.train.bridge.stage2_budget`), from the
    final-layer teacher states cached in the feature store, so Whisper is not rerun in training.
``cascade`` (:class:`CascadeSystem`)
    Whisper (encoder + decoder) transcribes; for transcription that transcript is the output, for
    spoken QA the same frozen LLM answers from it: the user turn is ``{transcript}\\n{instruction}``,
    i.e. AuRA's layout with the transcript where the audio tokens go.
``text`` (:class:`TextOnlySystem`)
    The upper bound: the frozen LLM given the reference transcript and the instruction, same layout.

Usage::

    >>> from pipeline.train.bridge import train_bridge
    >>> result = train_bridge(cfg)  # writes <checkpoints>/bridge/projector.safetensors  # doctest: +SKIP
    >>> bridge = BridgeSystem.from_config(cfg)  # Whisper encoder + projector + LLM  # doctest: +SKIP
    >>> bridge.answer(audio, "Transcribe the audio.").text  # doctest: +SKIP
    >>> cascade = CascadeSystem.from_config(cfg)  # doctest: +SKIP
    >>> cascade.answer(audio, instruction_for("spoken_qa"), task="spoken_qa").text  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from pipeline.config import AuraConfig
from pipeline.data.mel import WHISPER_SAMPLE_RATE
from pipeline.eval import SYSTEMS
from pipeline.decoding import (
    GenerationResult,
    GreedyOutput,
    greedy_decode,
    padding_token_id,
    stop_token_ids,
    text_only_generate,
)
from pipeline.runtime import ensure_mask_attention, load_frozen_llm, resolve_device, resolve_dtype
from pipeline.layout import RunLayout
from pipeline.models.bridge import BridgeProjector, bridge_embeddings, load_projector
from pipeline.models.sequence import layout_speech_batch
from pipeline.cluster import quiet_transformers
from pipeline.prompts import prompt_ids, task_of_instruction, text_prompt

SYSTEM_LABELS = {"aura": "AuRA (encoder-free)", "aura_ctc": "AuRA, CTC read-out (encoder-free)",
                 "bridge": "Bridge (Whisper enc + projector)", "cascade": "Cascade (Whisper -> LLM)", "text": "Text-only (reference transcript)"}


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


class AuraCTCSystem(AuraSystem):
    """The encoder-free student read through its CTC head; spoken QA answered from that transcript."""

    name = "aura_ctc"

    def __init__(self, model):
        model.read_out("ctc")  # refuses a student without a CTC head
        super().__init__(model)

    def answer(self, audio, instruction, task="transcribe", transcript=None, max_new_tokens=48) -> GenerationResult:
        return self.model.answer_via_ctc([audio], [instruction], max_new_tokens)[0]

    def answer_batch(self, audios, instructions, max_new_tokens=48) -> list[GenerationResult]:
        return self.model.answer_via_ctc(list(audios), list(instructions), max_new_tokens)


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

        path = Path(projector_path) if projector_path is not None else RunLayout.of(cfg).projector
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


SYSTEM_TYPES: dict[str, type[EvalSystem]] = {"aura": AuraSystem, "aura_ctc": AuraCTCSystem, "bridge": BridgeSystem,
                                             "cascade": CascadeSystem, "text": TextOnlySystem}
assert tuple(SYSTEM_TYPES) == SYSTEMS  # one registry; pipeline.eval.SYSTEMS names it without loading torch


def load_system(name: str, cfg: AuraConfig, device=None, dtype=None, export_path=None, projector_path=None) -> EvalSystem:
    """Build one of :data:`SYSTEMS` from the config (``export_path`` for AuRA, ``projector_path`` for the bridge)."""
    if name not in SYSTEM_TYPES:
        raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS}")
    options = {"aura": {"export_path": export_path}, "aura_ctc": {"export_path": export_path},
               "bridge": {"projector_path": projector_path}}.get(name, {})
    return SYSTEM_TYPES[name].from_config(cfg, device=device, dtype=dtype, **options)
