"""The AuRA student: a frozen causal LLM that hears through a patch embedding, LoRA and distillation heads.

Audio reaches the LLM without a speech encoder: the patch embedding
(:mod:`pipeline.models.patch_embedding`) turns log-mel frames into one token per stored Whisper teacher
frame, placed in the token sequence (:mod:`pipeline.models.sequence`: the batch layout and the attention
rule, causal plus bidirectional inside each audio run). LoRA on the first K decoder layers teaches the LLM
to read them; per-layer heads map the student's hidden states at the audio positions to the teacher's
layers (:mod:`pipeline.models.distillation`: heads, layer map and the loss). This module puts the parts
together and saves and loads the trainable ones.

Stage 1 (distillation only; the forward stops at the deepest distilled layer)::

    >>> from pipeline.config import StudentConfig
    >>> from pipeline.models.distillation import distillation_loss
    >>> student = AuraStudent.from_llm(llm, StudentConfig(), teacher_layers=[1, 2, 3, 4],
    ...                                teacher_width=384, n_mels=80, pooling=1)       # doctest: +SKIP
    >>> mel, token_lengths = student.patch_embedding.mel_batch([audio_a, audio_b])   # doctest: +SKIP
    >>> out = student.forward_distill(mel, token_lengths)                             # doctest: +SKIP
    >>> loss, per_layer = distillation_loss(out["layer_states"], targets, out["token_mask"])  # doctest: +SKIP
    >>> optimizer = torch.optim.AdamW(student.trainable_parameters(), lr=1e-3)       # doctest: +SKIP

Stage 2 (speech tasks: a chat prompt around the audio, LM loss on the answer)::

    >>> from pipeline.models.sequence import layout_speech_batch
    >>> batch = layout_speech_batch(before_audio=[prompt_ids], token_lengths=token_lengths,
    ...                             after_audio=[tail_ids], targets=[answer_ids], pad_id=0)  # doctest: +SKIP
    >>> out = student(**batch, mel=mel, token_lengths=token_lengths)                  # doctest: +SKIP
    >>> out["loss"].backward()                                                         # doctest: +SKIP

Saving and inference::

    >>> student.save_trainable("ckpt/student.safetensors")                             # doctest: +SKIP
    >>> again = AuraStudent.load(fresh_llm, "ckpt/student.safetensors")                # doctest: +SKIP
    >>> plain_llm = again.merge_and_unload()   # a LlamaForCausalLM with LoRA merged  # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Iterable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import StudentConfig
from pipeline.data.mel import WHISPER_CONV_STRIDE, MelSettings
from pipeline.models.ctc import CharacterCTCHead, CTCHead, make_ctc_head
from pipeline.models.distillation import DistillationHead, default_layer_map, validate_layer_map
from pipeline.models.patch_embedding import AudioPatchEmbedding, whisper_positions
from pipeline.models.sequence import IGNORE_INDEX, layout_speech_batch, run_decoder_layers

_FORMAT_VERSION = 1
FRONT_END_KEYS = "patch_embedding.front_end."  # the prefix of the optional convolutional front end's parameters
TEACHER_STEM_KEYS = ("patch_embedding.teacher_stem.", "patch_embedding.stem_proj.")  # the optional teacher stem's
STEM_PART = "the teacher stem's projection (the stem itself is copied from the teacher)"  # load_trainable's new part
TEACHER_LAYERS_KEYS = "patch_embedding.teacher_blocks."  # the copied teacher layers themselves (their own lr group)
TEACHER_POSITIONS_KEY = "patch_embedding.teacher_positions"  # optional in a file: Whisper's table is a formula
TEACHER_BLOCKS_KEYS = (TEACHER_LAYERS_KEYS, TEACHER_POSITIONS_KEY,  # the optional teacher layers',
                       "patch_embedding.blocks_")  # their projection's (blocks_proj) and statistics' (buffers)
BLOCKS_PART = ("the teacher layers' projection (the layers themselves start as student.teacher_blocks_weights says: "
               "the teacher's copy, or at random)")
CHARACTER_CTC_KEYS = "character_ctc."  # the prefix of the optional second, character CTC head's parameters
CHARACTER_HEAD_PART = "the character CTC head"  # load_trainable's new part


# --------------------------------------------------------------------------------------------------
# The student
# --------------------------------------------------------------------------------------------------


def _head_key(teacher_layer: int) -> str:
    return f"layer_{teacher_layer}"


def _lora_layer(key: str) -> int:
    """The decoder layer (0-based) of a saved LoRA tensor's key.

    >>> _lora_layer("lora.base_model.model.model.layers.12.mlp.down_proj.lora_A.weight")
    12
    """
    return int(key.split(".layers.", 1)[1].split(".", 1)[0])


def parts_ctc_head(path: str | Path) -> dict | None:
    """The CTC head of a :meth:`AuraStudent.save_trainable` file as ``{"ctc_layer", "ctc_vocabulary",
    "ctc_upsample"}`` (the student layer it reads and what it spells), or ``None`` when the file has no CTC head."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        if not any(k.startswith("ctc.") for k in f.keys()):
            return None
        metadata = json.loads((f.metadata() or {}).get("aura_student", "{}"))
    if metadata.get("ctc_layer") is None:
        raise ValueError(f"{path}: a CTC head without the layer it reads (no ctc_layer in its metadata)")
    student = StudentConfig.model_validate(metadata.get("student") or {})  # files before characters: LLM tokens
    return {"ctc_layer": int(metadata["ctc_layer"]), "ctc_vocabulary": student.ctc_vocabulary,
            "ctc_upsample": student.ctc_upsample}


def parts_ctc_layer(path: str | Path) -> int | None:
    """The student layer the CTC head of a :meth:`AuraStudent.save_trainable` file reads, or ``None`` when the
    file has no CTC head."""
    head = parts_ctc_head(path)
    return None if head is None else head["ctc_layer"]


class AuraStudent(nn.Module):
    """A frozen causal LLM (Llama family) + audio patch embedding + LoRA on layers ``[0, K)`` + heads.

    Build with :meth:`from_llm` (or :meth:`load` from a :meth:`save_trainable` file); see the module
    docstring for usage. ``layer_map`` maps teacher layer ``j`` -> student layer ``m`` (1-based output
    of decoder layer ``m``). ``ctc_head`` (optional, :mod:`pipeline.models.ctc`) reads student layer
    ``ctc_layer``, and so does ``character_ctc_head`` (optional: a second head that spells characters beside an
    LLM-token head, ``student.character_ctc_weight``). The LLM must be loaded with ``attn_implementation``
    ``"sdpa"`` or ``"eager"``.
    """

    def __init__(self, llm: nn.Module, patch_embedding: AudioPatchEmbedding, heads: nn.ModuleDict,
                 layer_map: dict[int, int], lora_layers: int, bidirectional_audio: bool = True,
                 metadata: dict | None = None, ctc_head: CTCHead | None = None, ctc_layer: int | None = None,
                 character_ctc_head: CharacterCTCHead | None = None):
        super().__init__()
        self.llm = llm  # a peft PeftModel until merge_and_unload(), then the plain LLM
        self.patch_embedding = patch_embedding
        self.heads = heads
        if (ctc_head is None) != (ctc_layer is None):
            raise ValueError("a CTC head needs its layer and a CTC layer needs its head")
        if character_ctc_head is not None and ctc_head is None:
            raise ValueError("a second, character CTC head goes beside a CTC head")
        self.ctc_head = ctc_head
        self.ctc_layer = ctc_layer
        self.character_ctc_head = character_ctc_head
        self.layer_map = dict(sorted(layer_map.items()))
        self.lora_layers = lora_layers
        self.bidirectional_audio = bidirectional_audio
        self.metadata = metadata or {}
        decoder = self.decoder
        for attr in ("embed_tokens", "layers", "norm", "rotary_emb"):
            if not hasattr(decoder, attr):
                raise TypeError(f"{type(decoder).__name__} has no {attr!r}: only Llama-family decoders are supported")
        self.layer_map = validate_layer_map(self.layer_map, len(decoder.layers))
        if ctc_layer is not None and not 1 <= ctc_layer <= len(decoder.layers):
            raise ValueError(f"student.ctc_layer={ctc_layer} outside the LLM's layers 1..{len(decoder.layers)}")

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_llm(cls, llm: nn.Module, cfg: StudentConfig, teacher_layers: Sequence[int], teacher_width: int,
                 n_mels: int, pooling: int, mel_settings: MelSettings | None = None,
                 carried_ctc_layer: int | None = None) -> "AuraStudent":
        """Wrap ``llm`` (modified in place: peft injects LoRA) into a student.

        K = ``cfg.lora_layers`` or the deepest mapped student layer; the layer map is ``cfg.layer_map``
        (validated) or :func:`default_layer_map` to ``cfg.distill_depth`` (None: half the LLM, at least
        one student layer per teacher layer). All LLM weights are frozen except LoRA; patch
        embedding and heads are created in the LLM's dtype and device and are trainable. A CTC head is made
        when ``cfg.ctc_weight > 0``, or at ``carried_ctc_layer`` when that is given (a head the parts a run starts
        from have, kept for the read-out by a run that does not train it: :func:`parts_ctc_layer`).
        """
        from peft import LoraConfig, get_peft_model

        num_layers = llm.config.num_hidden_layers
        width = llm.config.hidden_size
        if cfg.layer_map is not None:
            layer_map = validate_layer_map(cfg.layer_map, num_layers, teacher_layers)
        else:
            depth = cfg.distill_depth or min(num_layers, max(num_layers // 2, len(set(teacher_layers))))
            if depth > num_layers:
                raise ValueError(f"student.distill_depth={depth} exceeds the LLM's {num_layers} layers")
            layer_map = default_layer_map(teacher_layers, depth)
        lora_layers = cfg.lora_layers or max(layer_map.values())
        if lora_layers > num_layers:
            raise ValueError(f"student.lora_layers={lora_layers} exceeds the LLM's {num_layers} layers")

        for param in llm.parameters():
            param.requires_grad_(False)
        lora = LoraConfig(
            r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_targets), layers_to_transform=list(range(lora_layers)),
            bias="none",  # Llama projections have no bias; don't add trainable ones
        )
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`; the warning is theirs.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_llm = get_peft_model(llm, lora)

        ref = next(llm.parameters())
        patch = AudioPatchEmbedding(n_mels, width, WHISPER_CONV_STRIDE * pooling, mel_settings=mel_settings,
                                    front_end_channels=cfg.front_end_channels,
                                    front_end_clip_mean=cfg.front_end_clip_mean,
                                    teacher_stem_width=teacher_width if cfg.teacher_stem else 0,
                                    teacher_blocks=cfg.teacher_blocks)
        heads = nn.ModuleDict({_head_key(j): DistillationHead(width, teacher_width) for j in layer_map})
        patch.to(device=ref.device, dtype=ref.dtype)
        heads.to(device=ref.device, dtype=ref.dtype)
        ctc_head, ctc_layer = None, None
        if cfg.ctc_weight > 0 or carried_ctc_layer is not None:
            ctc_layer = (cfg.ctc_layer or max(layer_map.values())) if cfg.ctc_weight > 0 else carried_ctc_layer
            ctc_head = make_ctc_head(cfg.ctc_vocabulary, width, cfg.ctc_upsample).to(device=ref.device, dtype=ref.dtype)
        character_ctc_head = None
        if cfg.character_ctc_weight > 0:  # the config's validator saw to a token head beside it
            character_ctc_head = CharacterCTCHead(width, cfg.ctc_upsample).to(device=ref.device, dtype=ref.dtype)
        metadata = {
            "format_version": _FORMAT_VERSION,
            "student": cfg.model_dump(mode="json"),
            "teacher_layers": sorted(int(j) for j in teacher_layers),
            "teacher_width": int(teacher_width),
            "n_mels": int(n_mels),
            "pooling": int(pooling),
            "mel_settings": patch.mel_settings.model_dump(),
            "layer_map": {str(j): m for j, m in layer_map.items()},
            "lora_layers": lora_layers,
            "llm_layers": num_layers,
            "llm_width": width,
            "ctc_layer": ctc_layer,
        }
        return cls(peft_llm, patch, heads, layer_map, lora_layers, cfg.bidirectional_audio, metadata,
                   ctc_head=ctc_head, ctc_layer=ctc_layer, character_ctc_head=character_ctc_head)

    @classmethod
    def load(cls, llm: nn.Module, path: str | Path) -> "AuraStudent":
        """Rebuild a student around a fresh ``llm`` from a :meth:`save_trainable` file and load its weights."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("aura_student", "null"))
        if not meta:
            raise ValueError(f"{path} is not an AuRA student file (no 'aura_student' metadata)")
        cfg = StudentConfig.model_validate(meta["student"]).model_copy(
            update={"layer_map": {int(j): m for j, m in meta["layer_map"].items()}, "lora_layers": meta["lora_layers"],
                    "ctc_layer": meta.get("ctc_layer")})
        # ctc_layer is set whenever the file has a head, also one carried by a run that did not train it
        student = cls.from_llm(llm, cfg, meta["teacher_layers"], meta["teacher_width"], meta["n_mels"],
                               meta["pooling"], MelSettings(**meta["mel_settings"]),
                               carried_ctc_layer=meta.get("ctc_layer"))
        student.load_trainable(path)
        return student

    # -- parts of the LLM --------------------------------------------------------------------------

    @property
    def base_llm(self) -> nn.Module:
        """The causal LM inside (LoRA layers injected until :meth:`merge_and_unload`)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    @property
    def decoder(self) -> nn.Module:
        """The decoder stack (``LlamaModel``: embed_tokens, layers, norm, rotary_emb)."""
        return self.base_llm.base_model

    @property
    def teacher_layers(self) -> list[int]:
        return list(self.layer_map)

    @property
    def distill_depth(self) -> int:
        """The deepest student layer stage 1 trains (distilled or read by the CTC head)."""
        return max(*self.layer_map.values(), self.ctc_layer or 0)

    @property
    def attn_implementation(self) -> str:
        return self.base_llm.config._attn_implementation

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters to optimise: patch embedding, LoRA A/B of layers ``< K``, distillation heads."""
        return [p for p in self.parameters() if p.requires_grad]

    def freeze_lora(self, layers: range) -> int:
        """Freeze the LoRA of the decoder layers in ``layers`` (0-based): e.g. those deeper than stage 1's forward,
        which stops at the distilled depth (they would get no gradient), or the layers a stage 2 keeps as they
        start (``train.tasks_frozen_layers``); returns how many tensors."""
        frozen = 0
        for name, param in self.llm.named_parameters():
            if "lora_" in name and ".layers." in name and _lora_layer(name) in layers:
                param.requires_grad_(False)
                frozen += 1
        return frozen

    # -- forward passes ----------------------------------------------------------------------------

    def embed_sequence(self, input_ids: torch.Tensor, audio_mask: torch.Tensor | None = None,
                       mel: torch.Tensor | None = None, token_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with audio tokens written at ``audio_mask``; ``(B, L, llm_width)``.

        Sample ``b`` has ``token_lengths[b]`` audio positions in ``audio_mask[b]`` (any layout, e.g. from
        :func:`layout_speech_batch`); they take its audio tokens in order.
        """
        embed = self.decoder.embed_tokens
        if mel is None or audio_mask is None or not bool(audio_mask.any()):
            embeds = embed(input_ids)
            if self.training:
                # A text-only batch still touches the patch embedding (grad 0): DeepSpeed hangs when
                # some ranks produce no gradient for a trainable parameter.
                embeds = embeds + 0.0 * sum(p.sum() for p in self.patch_embedding.parameters()).to(embeds.dtype)
            return embeds
        audio_mask = audio_mask.bool()
        token_lengths = token_lengths.to(audio_mask.device)
        if not torch.equal(audio_mask.sum(1), token_lengths):
            raise ValueError(f"audio positions per sample {audio_mask.sum(1).tolist()} != token_lengths "
                             f"{token_lengths.tolist()}")
        tokens = self.patch_embedding(mel, int(token_lengths.max()))  # (B, T, D)
        valid = torch.arange(tokens.shape[1], device=tokens.device)[None] < token_lengths[:, None]
        embeds = embed(input_ids.masked_fill(audio_mask, 0))
        return embeds.masked_scatter(audio_mask[..., None], tokens[valid].to(embeds.dtype))

    def forward_layers(self, inputs_embeds: torch.Tensor, audio_mask: torch.Tensor | None,
                       attention_mask: torch.Tensor, upto: int | None = None,
                       collect: Iterable[int] | None = None) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Run decoder layers ``1..upto`` (all by default) by hand with the AuRA mask.

        Returns ``(hidden after layer upto (no final norm), {m: output of decoder layer m})`` for the
        student layers in ``collect`` (default: the mapped layers ``<= upto``).
        """
        if collect is None:
            collect = [*self.layer_map.values(), *([self.ctc_layer] if self.ctc_layer else [])]
        return run_decoder_layers(self.decoder, inputs_embeds, attention_mask, audio_mask, self.bidirectional_audio,
                                  self.attn_implementation, upto, collect)

    @staticmethod
    def _audio_positions(hidden: torch.Tensor, audio_mask: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """A layer's states at the audio positions of a mixed sequence, laid out ``(B, T_audio, width)``."""
        if torch.equal(audio_mask, token_mask):  # audio alone: already laid out so
            return hidden
        return hidden.new_zeros(*token_mask.shape, hidden.shape[-1]).masked_scatter(
            token_mask[..., None], hidden[audio_mask])

    def _heads_at_audio(self, states: dict[int, torch.Tensor], audio_mask: torch.Tensor,
                        token_mask: torch.Tensor) -> dict[int, torch.Tensor]:
        """Apply each head to its layer's audio positions, laid out ``(B, T_audio, teacher_width)``."""
        return {j: self.heads[_head_key(j)](self._audio_positions(states[m], audio_mask, token_mask))
                for j, m in self.layer_map.items()}

    def _ctc_at_audio(self, states: dict[int, torch.Tensor], audio_mask: torch.Tensor,
                      token_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"ctc_log_probs": (B, frames, 1 + vocab), "ctc_lengths": (B,)}`` from the CTC head (frames: the audio
        tokens x the head's ``upsample``), or ``{}`` without one; with a character head beside it also
        ``character_ctc_log_probs`` and ``character_ctc_lengths``."""
        if self.ctc_head is None:
            return {}
        hidden = self._audio_positions(states[self.ctc_layer], audio_mask, token_mask)
        out = {"ctc_log_probs": self.ctc_head(hidden, self.base_llm.get_output_embeddings()),
               "ctc_lengths": self.ctc_head.frame_lengths(token_mask.sum(1))}
        if self.character_ctc_head is not None:
            out["character_ctc_log_probs"] = self.character_ctc_head(hidden)
            out["character_ctc_lengths"] = self.character_ctc_head.frame_lengths(token_mask.sum(1))
        return out

    def forward_distill(self, mel: torch.Tensor, token_lengths: torch.Tensor,
                        prefix_ids: Sequence[int] | None = None, audio_states_at: Sequence[int] = (),
                        with_ctc: bool = True) -> dict:
        """Stage 1: ``[prefix_ids][audio tokens]``, layers run up to the deepest distilled layer (no norm, no lm_head).

        ``prefix_ids`` is the text in front of the audio in stage 2 and at inference
        (:func:`pipeline.prompts.audio_prefix_ids`): with it the audio states are exactly those the later
        stages compute, since text after the audio cannot reach them. Without it the audio starts at position 0.

        Returns ``{"layer_states": {teacher_layer: (B, T, teacher_width)}, "token_mask": (B, T) bool}``
        with ``T = max(token_lengths)``, ``ctc_log_probs`` ``(B, frames, 1 + vocab)`` and ``ctc_lengths`` when there is a CTC head (and
        ``with_ctc``: a training step that does not train the head skips its vocabulary-wide projection), and
        ``audio_states`` ``{m: (B, T, width)}``, the raw states of the student layers ``audio_states_at`` (each at
        most the distilled depth) at the audio positions.
        """
        deeper = [m for m in audio_states_at if not 1 <= m <= self.distill_depth]
        if deeper:
            raise ValueError(f"audio states of layer(s) {deeper}: stage 1 runs layers 1..{self.distill_depth}")
        token_lengths = token_lengths.to(mel.device)
        token_mask = torch.arange(int(token_lengths.max()), device=mel.device)[None] < token_lengths[:, None]
        dtype = self.decoder.embed_tokens.weight.dtype
        with_ctc = with_ctc and self.ctc_head is not None
        collect = [*self.layer_map.values(), *([self.ctc_layer] if with_ctc else []), *audio_states_at]
        if not prefix_ids:
            tokens = self.patch_embedding(mel, int(token_lengths.max()))
            embeds, audio_mask, attention_mask = tokens.to(dtype), token_mask, token_mask
        else:
            layout = layout_speech_batch([list(prefix_ids)] * mel.shape[0], token_lengths.cpu())
            layout = {k: v.to(mel.device) for k, v in layout.items()}
            embeds = self.embed_sequence(layout["input_ids"], layout["audio_mask"], mel, token_lengths)
            audio_mask, attention_mask = layout["audio_mask"], layout["attention_mask"]
        _, states = self.forward_layers(embeds, audio_mask, attention_mask, upto=self.distill_depth, collect=collect)
        out = {"layer_states": self._heads_at_audio(states, audio_mask, token_mask), "token_mask": token_mask,
               **(self._ctc_at_audio(states, audio_mask, token_mask) if with_ctc else {})}
        if audio_states_at:
            out["audio_states"] = {m: self._audio_positions(states[m], audio_mask, token_mask) for m in audio_states_at}
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, audio_mask: torch.Tensor | None = None,
                mel: torch.Tensor | None = None, token_lengths: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, return_layer_states: bool = True,
                logits: Literal["all", "labels"] = "all", return_ctc: bool | None = None) -> dict:
        """Full forward of a mixed text/audio sequence: logits, distilled layer states and LM loss.

        Returns ``logits`` (``(B, L, vocab)``; with ``logits="labels"`` only ``(N, vocab)`` for the N positions
        that predict a label, which is all training needs: the LM head is a fifth of SmolLM2's weights),
        ``layer_states {j: (B, T_audio, Dt)}``, ``token_mask`` and, with a CTC head, ``ctc_log_probs`` (when there
        is audio and ``return_layer_states``; ``return_ctc`` overrides it for the CTC head), and, when ``labels`` are given, ``loss`` (next-token cross-entropy on
        ``labels != -100``, float32) and ``sample_loss`` (its mean per sample, ``(B,)``).
        """
        embeds = self.embed_sequence(input_ids, audio_mask, mel, token_lengths)
        has_audio = mel is not None and audio_mask is not None and bool(audio_mask.any())
        hidden, states = self.forward_layers(embeds, audio_mask if has_audio else None, attention_mask)
        head = self.base_llm.get_output_embeddings()
        result: dict = {}
        if labels is not None:
            shift_labels = labels[:, 1:].to(hidden.device)
            scored = shift_labels != IGNORE_INDEX  # (B, L-1): positions whose next token is a label
            if logits == "labels":
                picked = head(self.decoder.norm(hidden[:, :-1][scored])).float()  # (N, vocab)
                result["logits"] = picked
            else:
                result["logits"] = head(self.decoder.norm(hidden))
                picked = result["logits"][:, :-1][scored].float()
            per_token = F.cross_entropy(picked, shift_labels[scored], reduction="none")
            result["loss"] = per_token.mean() if per_token.numel() else per_token.sum()
            sample = torch.zeros(scored.shape[0], device=per_token.device).index_add_(
                0, scored.nonzero()[:, 0], per_token)
            result["sample_loss"] = sample / scored.sum(1).clamp(min=1)
        else:
            if logits != "all":
                raise ValueError("logits='labels' needs labels")
            result["logits"] = head(self.decoder.norm(hidden))
        return_ctc = return_layer_states if return_ctc is None else return_ctc
        if has_audio and (return_layer_states or return_ctc):
            token_mask = (torch.arange(int(token_lengths.max()), device=input_ids.device)[None]
                          < token_lengths.to(input_ids.device)[:, None])
            result["token_mask"] = token_mask
            if return_layer_states:
                result["layer_states"] = self._heads_at_audio(states, audio_mask.bool(), token_mask)
            if return_ctc:
                result.update(self._ctc_at_audio(states, audio_mask.bool(), token_mask))
        return result

    # -- export, save, load ------------------------------------------------------------------------

    def merge_and_unload(self) -> nn.Module:
        """Merge LoRA into the LLM weights and drop the adapters; returns the plain causal LM.

        In place (no copy of the LLM): afterwards this student runs the merged weights and has no
        LoRA to train or save. Feed the LLM ``inputs_embeds`` from :meth:`embed_sequence` with the
        4D mask from :func:`build_attention_mask` and ``position_ids_from_mask``.
        """
        if hasattr(self.llm, "merge_and_unload"):
            self.llm = self.llm.merge_and_unload()
        return self.llm

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """``patch_embedding.*``, ``heads.*``, ``ctc.*`` (with a CTC head), ``character_ctc.*`` (with a second,
        character head) and ``lora.<peft key>`` tensors (what :meth:`save_trainable` writes)."""
        from peft import get_peft_model_state_dict

        state = {f"patch_embedding.{k}": v for k, v in self.patch_embedding.state_dict().items()}
        state.update({f"heads.{k}": v for k, v in self.heads.state_dict().items()})
        if self.ctc_head is not None:
            state.update({f"ctc.{k}": v for k, v in self.ctc_head.state_dict().items()})
        if self.character_ctc_head is not None:
            state.update({f"{CHARACTER_CTC_KEYS}{k}": v for k, v in self.character_ctc_head.state_dict().items()})
        if hasattr(self.llm, "peft_config"):
            # save_embedding_layers=False: "auto" may look the base model up on the Hub.
            lora = get_peft_model_state_dict(self.llm, save_embedding_layers=False)
            state.update({f"lora.{k}": v for k, v in lora.items()})
        return state

    def save_trainable(self, path: str | Path) -> Path:
        """Write patch embedding, heads and LoRA weights to one safetensors file (with the config as metadata)."""
        from safetensors.torch import save_file

        if not hasattr(self.llm, "peft_config"):
            raise RuntimeError("LoRA was merged into the LLM; save the merged model with save_pretrained instead")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.trainable_state_dict().items()}
        save_file(tensors, str(path), metadata={"aura_student": json.dumps(self.metadata)})
        return path

    def load_trainable(self, path: str | Path, new_parts: bool = False) -> list[str]:
        """Load a :meth:`save_trainable` file into this student; every expected tensor must be present.

        ``new_parts``: this student may add parts to the file's (a stage that adapts more than the parts it starts
        from): LoRA of layers deeper than the file's keeps its initialisation (B = 0, no update yet), and so does a
        CTC head the file lacks or has of another vocabulary (``student.ctc_vocabulary``; the file's is not read), and a
        second, character head the file lacks. Returns what was new, e.g. ``["LoRA of layers 9-30", "the CTC head"]``.
        A second, character head in the file is left unread by a student without one: it was a training aid (its
        loss shaped the states), and nothing reads it at inference.
        """
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        if not hasattr(self.llm, "peft_config"):
            raise RuntimeError("LoRA was merged into the LLM; there is nothing to load the adapters into")
        tensors = load_file(str(path))
        expected = set(self.trainable_state_dict())
        if TEACHER_POSITIONS_KEY in expected and TEACHER_POSITIONS_KEY not in tensors and any(
                k.startswith(TEACHER_LAYERS_KEYS) for k in tensors):  # a release leaves Whisper's sinusoids out
            tensors[TEACHER_POSITIONS_KEY] = whisper_positions(*self.patch_embedding.teacher_positions.shape)
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        if self.character_ctc_head is None:
            unexpected = [k for k in unexpected if not k.startswith(CHARACTER_CTC_KEYS)]
        new: list[str] = []
        if new_parts:
            deepest = max((_lora_layer(k) for k in tensors if k.startswith("lora.")), default=-1)
            deeper = sorted({_lora_layer(k) for k in missing if k.startswith("lora.") and _lora_layer(k) > deepest})
            if deeper:
                new.append(f"LoRA of layers {deeper[0] + 1}-{deeper[-1] + 1}")
            file_ctc = {k for k in tensors if k.startswith("ctc.")}
            if self.ctc_head is not None and file_ctc != {k for k in expected if k.startswith("ctc.")}:
                new.append("the CTC head")  # none in the file, or one of another vocabulary (left unread)
                unexpected = [k for k in unexpected if k not in file_ctc]
            if self.character_ctc_head is not None and not any(k.startswith(CHARACTER_CTC_KEYS) for k in tensors):
                new.append(CHARACTER_HEAD_PART)
            if self.patch_embedding.front_end is not None and not any(k.startswith(FRONT_END_KEYS) for k in tensors):
                new.append("the front end")
            if self.patch_embedding.teacher_stem is not None and not any(k.startswith(TEACHER_STEM_KEYS) for k in tensors):
                new.append(STEM_PART)  # the frozen stem keeps what was copied into it (StudentRecipe.build_student)
            if self.patch_embedding.teacher_blocks is not None and not any(k.startswith(TEACHER_BLOCKS_KEYS)
                                                                           for k in tensors):
                new.append(BLOCKS_PART)  # as the stem: the layers and their statistics keep what was set
            missing = [k for k in missing if not (k.startswith("lora.") and _lora_layer(k) in deeper)
                       and not (k.startswith("ctc.") and "the CTC head" in new)
                       and not (k.startswith(CHARACTER_CTC_KEYS) and CHARACTER_HEAD_PART in new)
                       and not (k.startswith(FRONT_END_KEYS) and "the front end" in new)
                       and not (k.startswith(TEACHER_STEM_KEYS) and STEM_PART in new)
                       and not (k.startswith(TEACHER_BLOCKS_KEYS) and BLOCKS_PART in new)]
        if missing or unexpected:
            raise ValueError(f"{path} does not fit this student: missing {missing[:5]}, unexpected {unexpected[:5]} "
                             f"({len(missing)} missing, {len(unexpected)} unexpected)")
        self.patch_embedding.load_state_dict(
            {k.removeprefix("patch_embedding."): v for k, v in tensors.items() if k.startswith("patch_embedding.")},
            strict=not {"the front end", STEM_PART, BLOCKS_PART} & set(new))
        self.heads.load_state_dict({k.removeprefix("heads."): v for k, v in tensors.items() if k.startswith("heads.")})
        if self.ctc_head is not None and "the CTC head" not in new:
            self.ctc_head.load_state_dict({k.removeprefix("ctc."): v for k, v in tensors.items() if k.startswith("ctc.")})
        if self.character_ctc_head is not None and CHARACTER_HEAD_PART not in new:
            self.character_ctc_head.load_state_dict(
                {k.removeprefix(CHARACTER_CTC_KEYS): v for k, v in tensors.items() if k.startswith(CHARACTER_CTC_KEYS)})
        lora = {k.removeprefix("lora."): v for k, v in tensors.items() if k.startswith("lora.")}
        result = set_peft_model_state_dict(self.llm, lora)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"LoRA tensors not used by this LLM: {result.unexpected_keys[:5]}")
        return new
