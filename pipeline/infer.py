"""Encoder-free inference: audio -> patch embedding -> LLM with LoRA merged -> text. No Whisper anywhere.

The trained parts (patch embedding + LoRA, the ``student.safetensors`` written by ``aura train``)
are loaded around the LLM named in the config, LoRA is merged into the LLM's weights, and
requests are decoded greedily with a KV cache. The Whisper teacher is neither imported nor built
on this path: at inference the LLM hears through its patch embedding alone.

A request is laid out like stage-2 training (:mod:`pipeline.prompts`), left-padded in a batch::

    [chat prompt][audio tokens x T][\\n instruction <|im_end|> <|im_start|>assistant\\n] -> answer

The prefix runs once through the merged LLM with the AuRA 4D mask (causal text, bidirectional
audio block, padding never attended; :func:`~pipeline.models.student.build_attention_mask`),
filling a ``DynamicCache``; each new token then goes through the LLM's standard cached forward.

Usage::

    >>> from pipeline.config import load_config
    >>> from pipeline.infer import EncoderFreeModel
    >>> model = EncoderFreeModel.from_config(load_config("configs/demo.yaml"))      # doctest: +SKIP
    >>> audio = load_checked("hello.wav", IngestConfig()).samples                   # doctest: +SKIP
    >>> [r.text for r in model.generate([audio], ["Transcribe the audio."], max_new_tokens=32)]  # doctest: +SKIP
    ['hello world']
    >>> model.text_only_generate(["What is the capital of France?"], max_new_tokens=8)[0].text  # doctest: +SKIP
    'Paris.'

From a shipped export (``aura export --merged DIR``, no config needed)::

    >>> from pipeline.export import load_merged
    >>> model = load_merged("exports/aura-smollm2")                                  # doctest: +SKIP

Files and folders from the command line (``aura transcribe`` / ``aura ask``): :mod:`pipeline.requests`;
whole datasets as a Ray job: :mod:`pipeline.batch`.

Every decoder (encoder-free, text-only, later baselines) goes through :func:`greedy_decode`, so
they differ only in what they put in front of the answer.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.config import AuraConfig
from pipeline.layout import RunLayout
from pipeline.models.student import (
    AudioPatchEmbedding,
    AuraStudent,
    build_attention_mask,
    layout_speech_batch,
    position_ids_from_mask,
)
from pipeline.prompts import instruction_for, prompt_ids

logger = logging.getLogger(__name__)

#: Attention kernels the AuRA mask can be handed to (see ``build_attention_mask``).
SUPPORTED_ATTENTION = ("sdpa", "eager")


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class GenerationResult:
    """One decoded answer.

    ``latency_s`` runs from the start of the :meth:`EncoderFreeModel.generate` call (mel included) to
    the step at which this answer stopped; ``time_to_first_token_s`` to the first generated token.
    Requests decoded together share the prefix pass, so in a batch these are batch wall times.
    """

    text: str
    num_audio_tokens: int
    prompt_tokens: int  # text + audio tokens in front of the answer (padding excluded)
    new_tokens: int  # generated tokens, the stop token excluded
    latency_s: float
    time_to_first_token_s: float
    finish_reason: Literal["stop", "length"] = "stop"
    token_ids: list[int] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("token_ids")
        return out


@dataclass
class GreedyOutput:
    """What :func:`greedy_decode` returns, one entry per sample; times are seconds since ``start_time``."""

    token_ids: list[list[int]]
    finish_reasons: list[str]
    first_token_s: list[float]
    finished_s: list[float]


# --------------------------------------------------------------------------------------------------
# The shared greedy loop
# --------------------------------------------------------------------------------------------------


def _cache_kwarg(llm: nn.Module) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns until 5.40)."""
    return "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stop_token_ids(tokenizer, llm: nn.Module | None = None) -> list[int]:
    """Ids that end an answer: the tokenizer's EOS, ``<|im_end|>`` when the vocabulary has it, and the
    generation config's EOS ids.

    >>> stop_token_ids(tokenizer, llm)            # SmolLM2: <|im_end|>              # doctest: +SKIP
    [2]
    """
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != getattr(tokenizer, "unk_token_id", None):
        ids.append(im_end)
    generation = getattr(llm, "generation_config", None) if llm is not None else None
    eos = getattr(generation, "eos_token_id", None)
    for i in ([eos] if isinstance(eos, int) else list(eos or [])):
        ids.append(int(i))
    if not ids:
        raise ValueError("the tokenizer has no EOS token and the generation config names none: nothing stops decoding")
    return sorted(set(ids))


@torch.inference_mode()
def greedy_decode(llm: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                  audio_mask: torch.Tensor | None = None, *, max_new_tokens: int,
                  stop_token_ids: Sequence[int], pad_token_id: int, bidirectional_audio: bool = True,
                  start_time: float | None = None) -> GreedyOutput:
    """Greedy decoding with a KV cache after a left-padded prefix given as embeddings.

    The prefix goes through ``llm`` once with the AuRA 4D mask (audio tokens of one run see each
    other when ``bidirectional_audio``; text is causal; padding is never attended) and positions
    counting real tokens only, filling a ``DynamicCache``. Each further step feeds the previous
    token with the standard 2D padding mask, which transformers turns into the cached causal mask.
    A sample stops at its first token in ``stop_token_ids`` (not included in its output) or after
    ``max_new_tokens``; finished samples are fed ``pad_token_id`` until all are done.

    ``llm`` is any causal LM taking ``inputs_embeds`` (the merged Llama, the unmerged peft model's
    base, or a plain text LLM), loaded with ``attn_implementation`` ``"sdpa"`` or ``"eager"``.

    >>> embeds = llm.get_input_embeddings()(ids)                              # doctest: +SKIP
    >>> out = greedy_decode(llm, embeds, torch.ones_like(ids), max_new_tokens=16,
    ...                     stop_token_ids=[2], pad_token_id=2)               # doctest: +SKIP
    >>> tokenizer.decode(out.token_ids[0])                                     # doctest: +SKIP
    """
    from transformers import DynamicCache

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if inputs_embeds.ndim != 3 or attention_mask.shape != inputs_embeds.shape[:2]:
        raise ValueError(f"inputs_embeds (B, L, D) {tuple(inputs_embeds.shape)} and attention_mask (B, L) "
                         f"{tuple(attention_mask.shape)} do not match")
    if not bool(attention_mask[:, -1].all()):
        raise ValueError("the prefix must be left-padded: the last position of every sample must be a real token")
    start_time = time.perf_counter() if start_time is None else start_time
    device = inputs_embeds.device
    impl = llm.config._attn_implementation
    batch = inputs_embeds.shape[0]
    attention_mask = attention_mask.to(device=device, dtype=torch.long)

    cache_kw = _cache_kwarg(llm)
    cache = DynamicCache(config=llm.config)
    mask = build_attention_mask(attention_mask, audio_mask, bidirectional_audio, inputs_embeds.dtype, impl)
    position_ids = position_ids_from_mask(attention_mask)
    # A 4D mask is passed through unchanged by transformers' mask builder; the cache still fills.
    out = llm(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=position_ids,
              use_cache=True, logits_to_keep=1, **{cache_kw: cache})
    next_position = position_ids[:, -1:] + 1  # left padding: the last column is real everywhere

    stops = set(int(i) for i in stop_token_ids)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    reasons = ["length"] * batch
    first_token_s = [0.0] * batch
    finished_s = [0.0] * batch
    done = [False] * batch
    for step in range(max_new_tokens):
        next_token = out.logits[:, -1].argmax(dim=-1)
        chosen = next_token.tolist()  # one host sync per step; needed to know who stopped
        now = time.perf_counter() - start_time
        for b, token in enumerate(chosen):
            if done[b]:
                continue
            if step == 0:
                first_token_s[b] = now
            if token in stops:
                done[b], reasons[b], finished_s[b] = True, "stop", now
            else:
                tokens[b].append(token)
        if all(done) or step == max_new_tokens - 1:
            break
        feed = torch.tensor([pad_token_id if d else t for d, t in zip(done, chosen)], device=device)[:, None]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        out = llm(input_ids=feed, attention_mask=attention_mask, position_ids=next_position,
                  use_cache=True, **{cache_kw: cache})
        next_position = next_position + 1
    _sync(device)
    end = time.perf_counter() - start_time
    finished_s = [t if d else end for t, d in zip(finished_s, done)]
    return GreedyOutput(tokens, reasons, first_token_s, finished_s)


def embed_with_audio(embed_tokens: nn.Module, patch_embedding: AudioPatchEmbedding, input_ids: torch.Tensor,
                     audio_mask: torch.Tensor, mel: torch.Tensor, token_lengths: torch.Tensor) -> torch.Tensor:
    """Token embeddings with sample ``b``'s audio tokens written, in order, at its ``audio_mask`` positions.

    The same placement as :meth:`AuraStudent.embed_sequence`, without needing the student (a merged
    export has only the LLM and the patch embedding).
    """
    token_lengths = token_lengths.to(input_ids.device)
    tokens = patch_embedding(mel.to(input_ids.device), int(token_lengths.max()))
    valid = torch.arange(tokens.shape[1], device=tokens.device)[None] < token_lengths[:, None]
    embeds = embed_tokens(input_ids.masked_fill(audio_mask, 0))
    return embeds.masked_scatter(audio_mask[..., None], tokens[valid].to(embeds.dtype))


def _results(tokenizer, out: GreedyOutput, prompt_tokens: Sequence[int], audio_tokens: Sequence[int]
             ) -> list[GenerationResult]:
    return [
        GenerationResult(
            text=tokenizer.decode(ids, skip_special_tokens=True).strip(),
            num_audio_tokens=int(audio_tokens[b]), prompt_tokens=int(prompt_tokens[b]), new_tokens=len(ids),
            latency_s=out.finished_s[b], time_to_first_token_s=out.first_token_s[b],
            finish_reason=out.finish_reasons[b], token_ids=list(ids),
        )
        for b, ids in enumerate(out.token_ids)
    ]


def padding_token_id(tokenizer) -> int:
    """The id that pads a batch: the tokenizer's pad token, else its end-of-sequence token, else 0."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


@torch.inference_mode()
def text_only_generate(llm: nn.Module, tokenizer, prompts: Sequence[str], max_new_tokens: int = 48,
                       chat: bool = True) -> list[GenerationResult]:
    """Greedy answers of a text LLM alone (e.g. the "LLM given the reference transcript" baseline).

    With ``chat`` each prompt is one user turn in the tokenizer's chat template (plus the assistant
    header); otherwise it is tokenized as is. Same decoding code as the encoder-free model.

    >>> llm, tok = load_llm("bundled:smollm2-135m-instruct")                               # doctest: +SKIP
    >>> text_only_generate(llm, tok, ["Repeat: hello world"], max_new_tokens=8)[0].text    # doctest: +SKIP
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        return []
    start = time.perf_counter()
    rows = []
    for prompt in prompts:
        if chat and getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                 add_generation_prompt=True)
            rows.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            rows.append(tokenizer(prompt)["input_ids"])
    device = llm.get_input_embeddings().weight.device
    batch = layout_speech_batch(rows, [0] * len(rows), pad_id=padding_token_id(tokenizer), padding_side="left")
    input_ids, attention_mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    out = greedy_decode(llm, llm.get_input_embeddings()(input_ids), attention_mask, None,
                        max_new_tokens=max_new_tokens, stop_token_ids=stop_token_ids(tokenizer, llm),
                        pad_token_id=padding_token_id(tokenizer), start_time=start)
    return _results(tokenizer, out, [len(r) for r in rows], [0] * len(rows))


# --------------------------------------------------------------------------------------------------
# The encoder-free model
# --------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"``: the first GPU when there is one, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"``: bfloat16 on a GPU that supports it, float32 otherwise; or a name like ``"float16"``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
    return resolved


def ensure_mask_attention(llm: nn.Module) -> None:
    """The AuRA mask is a 4D tensor that only the sdpa and eager kernels take; switch others to sdpa."""
    impl = llm.config._attn_implementation
    if impl not in SUPPORTED_ATTENTION:
        logger.debug("attention %r cannot take the AuRA 4D mask; switching the LLM to sdpa", impl)
        llm.set_attn_implementation("sdpa")


def trained_export_path(cfg: AuraConfig) -> Path:
    """Where training left the trained parts: stage ``tasks`` when it exists, else ``distill``; without
    either, the released student (:mod:`pipeline.released`) when it adapts the config's LLM.

    >>> trained_export_path(cfg)                                    # doctest: +SKIP
    PosixPath('runs/demo/checkpoints/tasks/export/student.safetensors')
    """
    root = Path(cfg.paths.checkpoints)
    for stage in ("tasks", "distill"):
        path = RunLayout(root).student(stage)
        if path.is_file():
            if stage == "distill":
                logger.warning("using the stage-1 (distill) export %s: it was never tuned to answer, so expect "
                               "little sense until `aura train --stage tasks` has run", path)
            return path
    from pipeline.released import released_student

    released = released_student(cfg.models.llm)
    if released is not None:
        logger.info("no trained student under %s: using the released student %s", root, released)
        return released
    raise FileNotFoundError(f"no trained student under {root} (looked for tasks/ and distill/ "
                            "export/student.safetensors) and no released student for "
                            f"{cfg.models.llm}; run `aura train` first or pass an export path")


class EncoderFreeModel:
    """The LLM (LoRA merged) + the audio patch embedding + the tokenizer: all that inference needs.

    Build it with :meth:`from_config` (trained export + the config's LLM), :meth:`from_export`,
    :meth:`from_student` (in memory, e.g. right after training) or
    :func:`pipeline.export.load_merged` (a shipped ``aura export --merged`` directory).

    >>> model = EncoderFreeModel.from_config(cfg)                                     # doctest: +SKIP
    >>> results = model.generate([audio_a, audio_b], ["Transcribe the audio."] * 2)   # doctest: +SKIP
    >>> results[0].text, results[0].num_audio_tokens, results[0].latency_s          # doctest: +SKIP
    ('hello world', 62, 0.21)
    """

    def __init__(self, llm: nn.Module, tokenizer, patch_embedding: AudioPatchEmbedding,
                 bidirectional_audio: bool = True, metadata: dict | None = None):
        ensure_mask_attention(llm)
        self.llm = llm.eval()
        self.tokenizer = tokenizer
        self.patch_embedding = patch_embedding.eval()
        self.bidirectional_audio = bidirectional_audio
        self.metadata = dict(metadata or {})
        self.stop_token_ids = stop_token_ids(tokenizer, llm)
        self.pad_token_id = padding_token_id(tokenizer)
        self._prompt_cache: dict[str, tuple[list[int], list[int]]] = {}

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_student(cls, student: AuraStudent, tokenizer, merge: bool = True,
                     metadata: dict | None = None) -> "EncoderFreeModel":
        """Wrap a trained student. ``merge=True`` merges LoRA into the LLM **in place** (the student then
        has no adapters); ``merge=False`` decodes through the LoRA layers as they are (for checks)."""
        llm = student.merge_and_unload() if merge else student.base_llm
        return cls(llm, tokenizer, student.patch_embedding, student.bidirectional_audio,
                   {**student.metadata, **(metadata or {}), "lora_merged": merge})

    @classmethod
    def from_export(cls, llm_spec: str, export_path: str | Path, cache_dir: str | Path | None = None,
                    device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                    trust_remote_code: bool = False) -> "EncoderFreeModel":
        """Load the LLM ``llm_spec`` (see :mod:`pipeline.models.sources`), put the trained student file
        ``export_path`` around it and merge LoRA. Nothing of Whisper is loaded."""
        from pipeline.models.sources import load_llm

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        started = time.perf_counter()
        llm, tokenizer = load_llm(llm_spec, cache_dir, dtype=dtype, trust_remote_code=trust_remote_code)
        ensure_mask_attention(llm)
        llm.to(device)
        student = AuraStudent.load(llm, export_path)
        model = cls.from_student(student, tokenizer, merge=True,
                                 metadata={"llm_spec": llm_spec, "source_export": str(export_path)})
        logger.debug("encoder-free model ready in %.1f s (%s, %s, %s)", time.perf_counter() - started,
                    llm_spec, device, dtype)
        return model

    @classmethod
    def from_config(cls, cfg: AuraConfig, export_path: str | Path | None = None,
                    device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
                    ) -> "EncoderFreeModel":
        """The LLM of ``cfg.models.llm`` with the latest trained export (:func:`trained_export_path`).

        >>> model = EncoderFreeModel.from_config(load_config("configs/demo.yaml"), dtype="bfloat16")  # doctest: +SKIP
        """
        path = Path(export_path) if export_path is not None else trained_export_path(cfg)
        return cls.from_export(cfg.models.llm, path, cache_dir=cfg.models.cache_dir, device=device, dtype=dtype,
                               trust_remote_code=cfg.models.trust_remote_code)

    # -- properties --------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.llm.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    # -- requests ----------------------------------------------------------------------------------

    def _prompt(self, instruction: str) -> tuple[list[int], list[int]]:
        if instruction not in self._prompt_cache:
            self._prompt_cache[instruction] = prompt_ids(self.tokenizer, instruction)
        return self._prompt_cache[instruction]

    def build_prefix(self, audios: Sequence[np.ndarray | torch.Tensor], instructions: Sequence[str] | str
                     ) -> dict[str, torch.Tensor]:
        """The left-padded prefix of a batch: ``inputs_embeds``, ``attention_mask``, ``audio_mask``,
        ``input_ids`` (audio positions hold padding), ``token_lengths`` (audio tokens per sample)."""
        if isinstance(instructions, str):
            instructions = [instructions] * len(audios)
        if len(audios) != len(instructions):
            raise ValueError(f"{len(audios)} audios but {len(instructions)} instructions")
        if len(audios) == 0:
            raise ValueError("empty batch")
        mel, token_lengths = self.patch_embedding.mel_batch(audios)
        prompts = [self._prompt(i) for i in instructions]
        batch = layout_speech_batch([b for b, _ in prompts], token_lengths, after_audio=[a for _, a in prompts],
                                    pad_id=self.pad_token_id, padding_side="left")
        device = self.device
        batch = {k: v.to(device) for k, v in batch.items()}
        batch["inputs_embeds"] = embed_with_audio(self.llm.get_input_embeddings(), self.patch_embedding,
                                                  batch["input_ids"], batch["audio_mask"], mel, token_lengths)
        batch["token_lengths"] = token_lengths
        return batch

    @torch.inference_mode()
    def generate(self, audios: Sequence[np.ndarray | torch.Tensor], instructions: Sequence[str] | str,
                 max_new_tokens: int = 48) -> list[GenerationResult]:
        """Greedy answers for 16 kHz mono utterances, one instruction each (a string applies to all).

        >>> model.generate([audio], ["Transcribe the audio."], max_new_tokens=32)[0].text   # doctest: +SKIP
        'hello world'
        """
        start = time.perf_counter()
        prefix = self.build_prefix(audios, instructions)
        out = greedy_decode(self.llm, prefix["inputs_embeds"], prefix["attention_mask"], prefix["audio_mask"],
                            max_new_tokens=max_new_tokens, stop_token_ids=self.stop_token_ids,
                            pad_token_id=self.pad_token_id, bidirectional_audio=self.bidirectional_audio,
                            start_time=start)
        return _results(self.tokenizer, out, prefix["attention_mask"].sum(1).tolist(),
                        prefix["token_lengths"].tolist())

    def transcribe(self, audios: Sequence[np.ndarray | torch.Tensor], max_new_tokens: int = 48
                   ) -> list[GenerationResult]:
        """:meth:`generate` with the transcription instruction of stage-2 training."""
        return self.generate(audios, instruction_for("transcribe"), max_new_tokens)

    @torch.inference_mode()
    def prompt_logits(self, audios: Sequence[np.ndarray | torch.Tensor], instructions: Sequence[str] | str
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits over the whole left-padded prefix, no cache: ``(logits (B, L, V) float32, attention_mask)``."""
        prefix = self.build_prefix(audios, instructions)
        mask = build_attention_mask(prefix["attention_mask"], prefix["audio_mask"], self.bidirectional_audio,
                                    prefix["inputs_embeds"].dtype, self.llm.config._attn_implementation)
        out = self.llm(inputs_embeds=prefix["inputs_embeds"], attention_mask=mask,
                       position_ids=position_ids_from_mask(prefix["attention_mask"]), use_cache=False)
        return out.logits.float(), prefix["attention_mask"]

    def text_only_generate(self, prompts: Sequence[str], max_new_tokens: int = 48, chat: bool = True
                           ) -> list[GenerationResult]:
        """The same LLM (LoRA merged) answering text prompts; see :func:`text_only_generate`."""
        return text_only_generate(self.llm, self.tokenizer, prompts, max_new_tokens, chat)
