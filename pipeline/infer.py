"""Encoder-free inference: audio -> patch embedding -> LLM with LoRA merged -> text. No Whisper anywhere.

The trained parts (patch embedding + LoRA, the ``student.safetensors`` written by ``aura train``)
are loaded around the LLM named in the config, LoRA is merged into the LLM's weights, and
requests are decoded greedily with a KV cache. The Whisper teacher is neither imported nor built
on this path: at inference the LLM hears through its patch embedding alone.

A request is laid out like stage-2 training (:mod:`pipeline.prompts`), left-padded in a batch::

    [chat prompt][audio tokens x T][\\n instruction <|im_end|> <|im_start|>assistant\\n] -> answer

The prefix runs once through the merged LLM with the AuRA 4D mask (causal text, bidirectional
audio block, padding never attended; :func:`~pipeline.models.sequence.build_attention_mask`),
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

Every decoder (encoder-free, text-only, the baselines) goes through :func:`pipeline.decoding.greedy_decode`, so
they differ only in what they put in front of the answer; devices and dtypes: :mod:`pipeline.runtime`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from pipeline.config import AuraConfig
from pipeline.decoding import (
    GenerationResult,
    LLMPrefixScorer,
    generation_results,
    greedy_decode,
    padding_token_id,
    stop_token_ids,
    text_only_generate,
)
from pipeline.layout import RunLayout
from pipeline.models.ctc import CTCHead, CTCSearch, ctc_beam_search, ctc_collapse
from pipeline.models.patch_embedding import AudioPatchEmbedding
from pipeline.models.sequence import (
    build_attention_mask,
    layout_speech_batch,
    position_ids_from_mask,
    run_decoder_layers,
)
from pipeline.models.student import AuraStudent, parts_ctc_layer
from pipeline.prompts import instruction_for, prompt_ids, task_of_instruction, text_prompt
from pipeline.runtime import ensure_mask_attention, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# The encoder-free model
# --------------------------------------------------------------------------------------------------


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
            if stage == "distill" and parts_ctc_layer(path) is None:
                # (a CTC head reads transcripts without stage 2, e.g. a released student adapted to new voices)
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
                 bidirectional_audio: bool = True, metadata: dict | None = None,
                 ctc_head: CTCHead | None = None, ctc_layer: int | None = None, adapters: nn.Module | None = None):
        ensure_mask_attention(llm)
        self.adapters = adapters  # the peft model when LoRA is not merged: its adapters can be switched off
        self.llm = llm.eval()
        self.tokenizer = tokenizer
        self.patch_embedding = patch_embedding.eval()
        self.bidirectional_audio = bidirectional_audio
        self.metadata = dict(metadata or {})
        self.stop_token_ids = stop_token_ids(tokenizer, llm)
        self.pad_token_id = padding_token_id(tokenizer)
        self._prompt_cache: dict[str, tuple[list[int], list[int]]] = {}
        self.ctc_head = ctc_head.eval() if ctc_head is not None else None
        self.ctc_layer = ctc_layer
        self.ctc_search = CTCSearch()  # the CTC read-out's decoding (from_config: the config's eval.ctc_*)

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_student(cls, student: AuraStudent, tokenizer, merge: bool = True,
                     metadata: dict | None = None) -> "EncoderFreeModel":
        """Wrap a trained student. ``merge=True`` merges LoRA into the LLM **in place** (the student then
        has no adapters); ``merge=False`` decodes through the LoRA layers as they are (for checks, and for the CTC
        read-out's spoken QA, which answers with the adapters off)."""
        adapters = None if merge else student.llm
        llm = student.merge_and_unload() if merge else student.base_llm
        return cls(llm, tokenizer, student.patch_embedding, student.bidirectional_audio,
                   {**student.metadata, **(metadata or {}), "lora_merged": merge},
                   ctc_head=student.ctc_head, ctc_layer=student.ctc_layer, adapters=adapters)

    @classmethod
    def from_export(cls, llm_spec: str, export_path: str | Path, cache_dir: str | Path | None = None,
                    device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
                    trust_remote_code: bool = False) -> "EncoderFreeModel":
        """Load the LLM ``llm_spec`` (see :mod:`pipeline.models.sources`), put the trained student file
        ``export_path`` around it and merge LoRA (not for a student with a CTC head: its read-out answers spoken
        questions with the adapters off, see :meth:`answer_via_ctc`). Nothing of Whisper is loaded."""
        from pipeline.models.sources import load_llm

        device = resolve_device(device)
        dtype = resolve_dtype(dtype, device)
        started = time.perf_counter()
        llm, tokenizer = load_llm(llm_spec, cache_dir, dtype=dtype, trust_remote_code=trust_remote_code)
        ensure_mask_attention(llm)
        llm.to(device)
        student = AuraStudent.load(llm, export_path)
        model = cls.from_student(student, tokenizer, merge=student.ctc_head is None,
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
        model = cls.from_export(cfg.models.llm, path, cache_dir=cfg.models.cache_dir, device=device, dtype=dtype,
                                trust_remote_code=cfg.models.trust_remote_code)
        model.ctc_search = CTCSearch(cfg.eval.ctc_beam, cfg.eval.ctc_lm_weight, cfg.eval.ctc_length_bonus)
        return model

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
        return generation_results(self.tokenizer, out, prefix["attention_mask"].sum(1).tolist(),
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

    def read_out(self, choice: str = "auto") -> str:
        """``generate`` or ``ctc``: ``auto`` is ``ctc`` for a student with a CTC head (on dev its transcripts are far
        closer than the generated ones; see ``benchmarks/readout_dev.py``), else ``generate``.

        >>> model.read_out("auto")   # doctest: +SKIP
        'ctc'
        """
        if choice not in ("auto", "generate", "ctc"):
            raise ValueError(f"read-out {choice!r}: choose auto, generate or ctc")
        if choice == "auto":
            return "ctc" if self.ctc_head is not None else "generate"
        if choice == "ctc" and self.ctc_head is None:
            raise ValueError(f"read-out ctc: {self.metadata.get('source_export') or 'this student'} has no CTC head "
                             "(train stage 1 with student.ctc_weight > 0)")
        return choice

    def answer(self, audios: Sequence[np.ndarray | torch.Tensor], instructions: Sequence[str] | str,
               max_new_tokens: int = 48, read_out: str = "auto") -> list[GenerationResult]:
        """:meth:`generate` or :meth:`answer_via_ctc`, as :meth:`read_out` picks."""
        if self.read_out(read_out) == "ctc":
            return self.answer_via_ctc(audios, instructions, max_new_tokens)
        return self.generate(audios, instructions, max_new_tokens)

    @torch.inference_mode()
    def ctc_transcribe(self, audios: Sequence[np.ndarray | torch.Tensor]) -> list[GenerationResult]:
        """Transcripts read off the audio states by the student's CTC head (one trained with
        ``student.ctc_weight > 0``): the prefix runs up to ``ctc_layer``, the head scores each audio state against
        the LLM's own output embedding, and the greedy CTC path is the transcript, or, as :attr:`ctc_search` says,
        a prefix beam search with the LLM itself (adapters off) as its language model. No Whisper.

        >>> model.ctc_transcribe([audio])[0].text   # doctest: +SKIP
        'hello world'
        """
        start = time.perf_counter()
        if self.ctc_search.greedy:  # the best label per frame, never the whole vocabulary's log-probabilities
            states, audio_tokens, prompt_tokens = self.ctc_states(audios)
            ids = [ctc_collapse(labels) for labels in
                   self.ctc_head.best_labels(states, audio_tokens, self.llm.get_output_embeddings())]
        else:
            log_probs, lengths, prompt_tokens = self._ctc_log_probs(audios)
            ids = self._ctc_beam_ids(log_probs, lengths)
            audio_tokens = lengths // self.ctc_head.upsample
        latency = time.perf_counter() - start
        audio_tokens = audio_tokens.tolist()
        return [GenerationResult(text=self.ctc_head.text(i, self.tokenizer), num_audio_tokens=int(n),
                                 prompt_tokens=int(p), new_tokens=len(i), latency_s=latency,
                                 time_to_first_token_s=latency, token_ids=list(i))
                for i, n, p in zip(ids, audio_tokens, prompt_tokens)]

    def ctc_log_probs(self, audios: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The CTC head's log-probabilities per CTC frame, ``(batch, frames, 1 + vocabulary)`` with the blank at
        0, and each clip's number of frames (its audio tokens x the head's ``upsample``: one for the LLM-token head):
        what :meth:`ctc_transcribe` reads its transcripts from (``ctc_head.text`` turns a path's ids into text).

        >>> log_probs, lengths = model.ctc_log_probs([audio])   # doctest: +SKIP
        >>> log_probs[0, : lengths[0]].max(-1).values.mean()    # the read-out's confidence  # doctest: +SKIP
        """
        log_probs, lengths, _ = self._ctc_log_probs(audios)
        return log_probs, lengths

    def ctc_states(self, audios: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The states the CTC head reads: the output of decoder layer ``ctc_layer`` at the audio positions,
        ``(batch, tokens, width)`` zero padded, each clip's number of audio tokens, and each prompt's length in tokens
        (e.g. to train another read-out on a frozen student: ``benchmarks.ctc_vocabulary``)."""
        self.read_out("ctc")  # refuses a student without a CTC head
        states, lengths, prompt_tokens = self.audio_states(audios, [self.ctc_layer])
        return states[self.ctc_layer], lengths, prompt_tokens

    def audio_states(self, audios: Sequence[np.ndarray | torch.Tensor], layers: Sequence[int]
                     ) -> tuple[dict[int, torch.Tensor], torch.Tensor, list[int]]:
        """The student's states at the audio positions of a transcription prompt, ``{m: (batch, tokens, width)}``
        zero padded, for each layer ``m`` of ``layers`` (the output of decoder layer ``m``; 0: the embeddings, the
        patch embedding's audio tokens), each clip's number of audio tokens and each prompt's length in tokens
        (e.g. to probe what each depth holds: ``benchmarks.layer_probe``)."""
        prefix = self.build_prefix(audios, instruction_for("transcribe"))
        deepest = max(layers)
        # The audio states cannot see the text after them, so the full prompt gives stage 1's states; the layers
        # above the deepest asked for are not needed.
        collected = {0: prefix["inputs_embeds"]}
        if deepest > 0:
            _, deeper = run_decoder_layers(self.llm.model, prefix["inputs_embeds"], prefix["attention_mask"],
                                           prefix["audio_mask"], self.bidirectional_audio,
                                           self.llm.config._attn_implementation, upto=deepest,
                                           collect=[m for m in layers if m > 0])
            collected.update(deeper)
        lengths = prefix["token_lengths"]
        states = {}
        for m in layers:
            hidden = collected[m]
            audio = hidden.new_zeros(len(audios), int(lengths.max()), hidden.shape[-1])
            for b in range(len(audios)):
                audio[b, : int(lengths[b])] = hidden[b, prefix["audio_mask"][b]]
            states[m] = audio
        return states, lengths, prefix["attention_mask"].sum(1).tolist()

    def _ctc_log_probs(self, audios):
        audio, lengths, prompt_tokens = self.ctc_states(audios)
        log_probs = self.ctc_head(audio, self.llm.get_output_embeddings())
        return log_probs, self.ctc_head.frame_lengths(lengths), prompt_tokens

    def _ctc_beam_ids(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """:func:`ctc_beam_search` per clip; with an LM weight, the LLM with its adapters off is the LM (text through
        the LoRA layers is not the LLM's any more)."""
        search = self.ctc_search
        scorer = None
        if search.lm_weight and self.ctc_head.vocabulary != "llm_tokens":
            raise ValueError(f"eval.ctc_lm_weight={search.lm_weight}: the LLM scores its own tokens, and this CTC head "
                             f"spells {self.ctc_head.vocabulary}; its beam search takes no LM weight")
        if search.lm_weight:
            if self.adapters is None:
                raise ValueError("the CTC beam search's LM is the LLM with its adapters off: it needs the LoRA unmerged")
            end = self.tokenizer.eos_token_id
            scorer = LLMPrefixScorer(self.llm, start_id=end, end_id=end)  # a transcript read as a document
        out = []
        with self.adapters.disable_adapter() if scorer is not None else contextlib.nullcontext():
            for b, length in enumerate(lengths.tolist()):
                if scorer is not None:
                    scorer.reset()
                out.append(ctc_beam_search(log_probs[b, :length], beam=search.beam, lm=scorer,
                                           lm_weight=search.lm_weight, length_bonus=search.length_bonus))
        return out

    def answer_via_ctc(self, audios: Sequence[np.ndarray | torch.Tensor], instructions: Sequence[str] | str,
                       max_new_tokens: int = 48) -> list[GenerationResult]:
        """Answers through the CTC read-out: the transcript (:meth:`ctc_transcribe`) for the transcription
        instruction; for any other, the LLM with its adapters off (the frozen LLM, no second copy in memory) answers
        from that transcript as text (:func:`text_prompt`), as the cascade does from Whisper's. The adapters were
        trained on audio, and text through them is not the LLM's any more. Latencies include the read-out."""
        if isinstance(instructions, str):
            instructions = [instructions] * len(audios)
        heard = self.ctc_transcribe(audios)
        asked = [i for i, instruction in enumerate(instructions) if task_of_instruction(instruction) != "transcribe"]
        if asked:
            if self.adapters is None:
                raise ValueError("spoken questions through the CTC read-out need the LoRA unmerged "
                                 "(EncoderFreeModel.from_student(..., merge=False))")
            with self.adapters.disable_adapter():
                answers = self.text_only_generate([text_prompt(heard[i].text, instructions[i]) for i in asked],
                                                  max_new_tokens)
            for i, answer in zip(asked, answers):
                answer.latency_s += heard[i].latency_s  # the answer starts once the transcript is there
                answer.time_to_first_token_s += heard[i].latency_s
                heard[i] = answer
        return heard

    def text_only_generate(self, prompts: Sequence[str], max_new_tokens: int = 48, chat: bool = True
                           ) -> list[GenerationResult]:
        """The same LLM (LoRA merged) answering text prompts; see :func:`text_only_generate`."""
        return text_only_generate(self.llm, self.tokenizer, prompts, max_new_tokens, chat)
