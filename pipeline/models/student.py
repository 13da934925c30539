"""The AuRA student: a frozen causal LLM that hears through a patch embedding, LoRA and distillation heads.

Audio reaches the LLM without a speech encoder: log-mel frames are cut into patches by a strided
``Conv1d`` (one patch per stored Whisper teacher frame), normalised and projected to the LLM width,
and placed in the token sequence. LoRA on the first K decoder layers teaches the LLM to read them;
per-layer heads (RMSNorm + Linear) map the student's hidden states at the audio positions to the
teacher's layers, and the loss is the per-token ``1 - cosine`` (:func:`distillation_loss`).

Attention (:func:`build_attention_mask`): causal everywhere, plus bidirectional inside each
contiguous run of audio tokens of a sample; padding keys are never attended to.

Layer numbering: teacher layer ``j`` is Whisper's ``hidden_states[j]`` (0 = embeddings); student
layer ``m`` is the *output* of decoder layer ``m`` (1-based), i.e. the LLM's ``hidden_states[m]``
before the final norm.

Stage 1 (distillation only; the forward stops at the deepest distilled layer)::

    >>> from pipeline.config import StudentConfig
    >>> student = AuraStudent.from_llm(llm, StudentConfig(), teacher_layers=[1, 2, 3, 4],
    ...                                teacher_width=384, n_mels=80, pooling=1)       # doctest: +SKIP
    >>> mel, token_lengths = student.patch_embedding.mel_batch([audio_a, audio_b])   # doctest: +SKIP
    >>> out = student.forward_distill(mel, token_lengths)                             # doctest: +SKIP
    >>> loss, per_layer = distillation_loss(out["layer_states"], targets, out["token_mask"])  # doctest: +SKIP
    >>> optimizer = torch.optim.AdamW(student.trainable_parameters(), lr=1e-3)       # doctest: +SKIP

Stage 2 (speech tasks: a chat prompt around the audio, LM loss on the answer)::

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
import math
import warnings
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import StudentConfig
from pipeline.data.mel import WHISPER_CONV_STRIDE, MelSettings, log_mel, teacher_frames

IGNORE_INDEX = -100
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------
# Audio patch embedding
# --------------------------------------------------------------------------------------------------


def mel_floor(mel: torch.Tensor) -> torch.Tensor:
    """The value :func:`~pipeline.data.mel.log_mel` gives digital silence in each utterance, shape ``(B, 1, 1)``.

    ``log_mel`` clamps the log10 power at ``max(-10, peak - 8)`` and maps ``x -> (x + 4) / 4``, so silence
    (the zeros Whisper pads with) sits at ``max(-1.5, mel.max() - 2)``.
    """
    if mel.shape[-1] == 0:  # shorter than one hop: all silence
        return mel.new_full((*mel.shape[:-2], 1, 1), -1.5)
    peak = mel.amax(dim=(-2, -1), keepdim=True)
    return torch.clamp(peak - 2.0, min=-1.5)


def audio_mel_batch(audios: Sequence[np.ndarray | torch.Tensor], settings: MelSettings, pooling: int = 1
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel of a batch of raw 16 kHz mono utterances, cut to whole student tokens.

    Each utterance gets exactly ``teacher_frames(len(audio), pooling)`` tokens, i.e. ``tokens * 2 * pooling``
    mel frames. Its mel is computed on the audio followed by zeros, as the teacher sees it inside Whisper's
    30 s window, so the frames at the end of the audio equal the teacher's (not a reflection of the
    audio). Shorter utterances are padded to the longest with their silence value.

    Returns ``(mel (B, n_mels, max_tokens * stride) float32, token_lengths (B,) int64)``.

    >>> mel, lengths = audio_mel_batch([np.zeros(16000), np.zeros(8000)], MelSettings(), pooling=1)
    >>> mel.shape, lengths.tolist()
    (torch.Size([2, 80, 100]), [50, 25])
    """
    stride = WHISPER_CONV_STRIDE * pooling
    if len(audios) == 0:
        raise ValueError("empty batch of audio")
    mels, lengths = [], []
    for i, audio in enumerate(audios):
        wave = audio.float() if torch.is_tensor(audio) else torch.from_numpy(np.asarray(audio, dtype=np.float32))
        if wave.ndim != 1:
            raise ValueError(f"audio {i}: expected a 1-D mono signal, got shape {tuple(wave.shape)}")
        if wave.numel() == 0:
            raise ValueError(f"audio {i} is empty")
        tokens = teacher_frames(wave.numel(), pooling, settings.hop_length)
        frames = tokens * stride
        # Zeros past the token boundary plus half an FFT window: every kept frame sees what Whisper sees.
        padded = F.pad(wave, (0, frames * settings.hop_length + settings.n_fft - wave.numel()))
        mels.append(log_mel(padded, settings)[:, :frames])
        lengths.append(tokens)
    max_frames = max(lengths) * stride
    batch = torch.stack([
        torch.cat([m, mel_floor(m)[0].expand(m.shape[0], max_frames - m.shape[1])], dim=1) for m in mels
    ])
    return batch, torch.tensor(lengths, dtype=torch.long)


class AudioPatchEmbedding(nn.Module):
    """Log-mel ``(B, n_mels, T_mel)`` -> audio tokens ``(B, T_mel / stride, llm_width)``.

    Strided ``Conv1d`` (kernel = stride: non-overlapping patches) -> ``LayerNorm`` -> ``Linear``.
    ``stride = 2 * pooling`` makes one token per stored teacher frame (Whisper: 100 mel frames/s,
    50 teacher frames/s). A mel whose length is not a multiple of the stride (or shorter than
    ``num_tokens * stride``) is padded on the right with its silence value (:func:`mel_floor`).

    >>> embed = AudioPatchEmbedding(n_mels=80, llm_width=64, stride=2)
    >>> embed.num_tokens(16000), embed.num_tokens(16001)
    (50, 51)
    >>> mel, lengths = embed.mel_batch([torch.zeros(16001)])
    >>> embed(mel).shape
    torch.Size([1, 51, 64])
    """

    def __init__(self, n_mels: int, llm_width: int, stride: int, hidden: int | None = None,
                 mel_settings: MelSettings | None = None):
        super().__init__()
        if stride < WHISPER_CONV_STRIDE or stride % WHISPER_CONV_STRIDE:
            raise ValueError(f"stride must be {WHISPER_CONV_STRIDE} x pooling (one token per teacher frame), got {stride}")
        self.mel_settings = mel_settings or MelSettings(n_mels=n_mels)
        if self.mel_settings.n_mels != n_mels:
            raise ValueError(f"n_mels={n_mels} but mel_settings.n_mels={self.mel_settings.n_mels}")
        self.n_mels = n_mels
        self.stride = stride
        self.pooling = stride // WHISPER_CONV_STRIDE
        hidden = hidden or llm_width
        self.patchify = nn.Conv1d(n_mels, hidden, kernel_size=stride, stride=stride)
        self.norm = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, llm_width)

    def num_tokens(self, num_samples: int) -> int:
        """Tokens for ``num_samples`` of 16 kHz audio: exactly the teacher's stored frames."""
        return teacher_frames(num_samples, self.pooling, self.mel_settings.hop_length)

    def mel_batch(self, audios: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mel, token_lengths)`` for raw 16 kHz utterances; see :func:`audio_mel_batch`."""
        return audio_mel_batch(audios, self.mel_settings, self.pooling)

    def forward(self, mel: torch.Tensor, num_tokens: int | None = None) -> torch.Tensor:
        """Tokens ``(B, num_tokens, llm_width)``; ``num_tokens`` defaults to ``ceil(T_mel / stride)``."""
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"expected mel (batch, {self.n_mels}, frames), got {tuple(mel.shape)}")
        if num_tokens is None:
            num_tokens = math.ceil(mel.shape[-1] / self.stride)
        want = num_tokens * self.stride
        if mel.shape[-1] < want:
            fill = mel_floor(mel).expand(mel.shape[0], mel.shape[1], want - mel.shape[-1])
            mel = torch.cat([mel, fill], dim=-1)
        mel = mel[..., :want].to(self.patchify.weight.dtype)
        patches = self.patchify(mel).transpose(1, 2)  # (B, tokens, hidden)
        return self.proj(self.norm(patches))


# --------------------------------------------------------------------------------------------------
# Distillation heads, layer map, loss
# --------------------------------------------------------------------------------------------------


class DistillationHead(nn.Module):
    """Student hidden state (LLM width) -> teacher layer space: ``RMSNorm`` + ``Linear``."""

    def __init__(self, llm_width: int, teacher_width: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.RMSNorm(llm_width, eps=eps)
        self.proj = nn.Linear(llm_width, teacher_width)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(hidden.to(self.proj.weight.dtype)))


def default_layer_map(teacher_layers: Sequence[int], distill_depth: int) -> dict[int, int]:
    """Teacher layer ``j`` -> student layer ``m(j)``, proportional to depth, the deepest ``j`` at ``distill_depth``.

    ``m(j) = round(j / max(teacher_layers) * distill_depth)``, then nudged so the map is strictly
    increasing and every ``m >= 1`` (student layer 0 would be the patch embedding itself).

    >>> default_layer_map([1, 2, 3, 4], 8)
    {1: 2, 2: 4, 3: 6, 4: 8}
    >>> default_layer_map([0, 2, 4], 6)
    {0: 1, 2: 3, 4: 6}
    """
    layers = sorted(set(int(j) for j in teacher_layers))
    if not layers:
        raise ValueError("no teacher layers to distill")
    if layers[0] < 0:
        raise ValueError(f"teacher layers must be >= 0, got {layers}")
    if len(layers) > distill_depth:
        raise ValueError(f"{len(layers)} teacher layers cannot map to distinct student layers 1..{distill_depth}; "
                         "raise student.distill_depth or store fewer layers")
    deepest = max(layers[-1], 1)
    targets = [int(math.floor(j / deepest * distill_depth + 0.5)) for j in layers]
    targets[-1] = distill_depth
    for i in range(len(targets)):  # up-sweep: >= 1 and strictly increasing
        targets[i] = max(targets[i], 1, targets[i - 1] + 1 if i else 1)
    for i in range(len(targets) - 1, -1, -1):  # down-sweep: stay within depth
        ceiling = distill_depth if i == len(targets) - 1 else targets[i + 1] - 1
        targets[i] = min(targets[i], ceiling)
    return dict(zip(layers, targets))


def validate_layer_map(layer_map: dict[int, int], num_llm_layers: int,
                       teacher_layers: Iterable[int] | None = None) -> dict[int, int]:
    """Check a user-given map (keys available, values in ``1..num_llm_layers``, strictly increasing); sorted copy.

    >>> validate_layer_map({4: 8, 2: 3}, num_llm_layers=8)
    {2: 3, 4: 8}
    """
    if not layer_map:
        raise ValueError("layer map is empty")
    ordered = dict(sorted((int(j), int(m)) for j, m in layer_map.items()))
    if teacher_layers is not None:
        available = set(int(j) for j in teacher_layers)
        missing = [j for j in ordered if j not in available]
        if missing:
            raise ValueError(f"layer map uses teacher layers {missing} that are not among {sorted(available)}")
    bad = {j: m for j, m in ordered.items() if not 1 <= m <= num_llm_layers}
    if bad:
        raise ValueError(f"layer map {bad}: student layers must be in 1..{num_llm_layers} (output of decoder layer m)")
    values = list(ordered.values())
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"layer map {ordered} must be strictly increasing (deeper teacher layer -> deeper student layer)")
    return ordered


def distillation_loss(layer_states: dict[int, torch.Tensor], targets: dict[int, torch.Tensor],
                      token_mask: torch.Tensor, kind: Literal["cosine", "mse"] = "cosine",
                      ) -> tuple[torch.Tensor, dict[int, dict[str, torch.Tensor]]]:
    """Layer-wise distillation loss over the valid audio tokens.

    ``cosine``: per token ``1 - cos(student, teacher)``, averaged over the valid tokens of the batch,
    then over layers. ``mse``: mean squared error per element on the targets as they are. Computed in
    float32. ``per_layer[j]`` holds ``loss`` (with grad) and ``cosine`` (detached mean cosine, always).

    >>> s = {1: torch.randn(2, 3, 4)}
    >>> loss, per = distillation_loss(s, {1: s[1].clone()}, torch.ones(2, 3, dtype=torch.bool))
    >>> abs(loss.item()) < 1e-6, round(per[1]["cosine"].item(), 6)
    (True, 1.0)
    """
    if kind not in ("cosine", "mse"):
        raise ValueError(f"unknown distillation loss {kind!r}; use 'cosine' or 'mse'")
    missing = [j for j in layer_states if j not in targets]
    if missing:
        raise KeyError(f"no targets for teacher layers {missing}")
    mask = token_mask.bool()
    count = mask.sum().clamp(min=1)
    weights = mask.float()
    per_layer: dict[int, dict[str, torch.Tensor]] = {}
    losses = []
    for j, student in layer_states.items():
        target = targets[j].to(device=student.device)
        if target.shape != student.shape:
            raise ValueError(f"teacher layer {j}: target shape {tuple(target.shape)} != student {tuple(student.shape)}")
        student32, target32 = student.float(), target.float()
        # Rounding can put cos a hair outside [-1, 1]; clamp so the loss is never negative.
        cosine = F.cosine_similarity(student32, target32, dim=-1, eps=1e-8).clamp(-1.0, 1.0)  # (B, T)
        mean_cosine = (cosine * weights).sum() / count
        if kind == "cosine":
            loss = ((1.0 - cosine) * weights).sum() / count
        else:
            loss = (((student32 - target32) ** 2).mean(-1) * weights).sum() / count
        per_layer[j] = {"loss": loss, "cosine": mean_cosine.detach()}
        losses.append(loss)
    return torch.stack(losses).mean(), per_layer


# --------------------------------------------------------------------------------------------------
# Sequences and masks
# --------------------------------------------------------------------------------------------------


def audio_block_ids(audio_mask: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` id of the contiguous audio run each position belongs to (1, 2, ...); 0 for text."""
    audio = audio_mask.bool()
    starts = audio & ~F.pad(audio, (1, 0))[:, :-1]
    return torch.cumsum(starts.long(), dim=1) * audio.long()


def build_attention_mask(attention_mask: torch.Tensor, audio_mask: torch.Tensor | None = None,
                         bidirectional_audio: bool = True, dtype: torch.dtype = torch.float32,
                         implementation: str = "sdpa") -> torch.Tensor:
    """The 4D mask ``(B, 1, L, L)`` for a sequence mixing text and audio tokens.

    Query ``q`` may attend to key ``k`` when ``k`` is a real token (``attention_mask[b, k]``) and either
    ``k <= q`` (causal) or both are audio tokens of the same contiguous audio run (bidirectional).
    A padding query attends only to itself, so no row is empty (an all-masked row is NaN in sdpa).

    ``implementation`` is the LLM's ``config._attn_implementation``: ``"sdpa"`` gets a boolean mask
    (True = attend), ``"eager"`` an additive float mask (0 or ``finfo(dtype).min``), which is what
    transformers' own mask builders give these kernels. transformers passes a 4D mask through
    unchanged, so the mask also works for ``llm(inputs_embeds=..., attention_mask=mask)``.
    """
    if implementation not in ("sdpa", "eager"):
        raise ValueError(f"attention implementation {implementation!r} is not supported by the AuRA mask; "
                         "load the LLM with attn_implementation='sdpa' or 'eager'")
    real = attention_mask.bool()
    batch, length = real.shape
    idx = torch.arange(length, device=real.device)
    allowed = (idx[None, :] <= idx[:, None])[None].expand(batch, length, length)  # (B, q, k) causal
    if audio_mask is not None and bidirectional_audio:
        blocks = audio_block_ids(audio_mask)
        same_block = (blocks[:, :, None] == blocks[:, None, :]) & (blocks[:, :, None] > 0)
        allowed = allowed | same_block
    allowed = allowed & real[:, None, :] & real[:, :, None]
    allowed = allowed | (torch.eye(length, dtype=torch.bool, device=real.device)[None] & ~real[:, :, None])
    allowed = allowed[:, None]  # (B, 1, q, k): one mask for all heads
    if implementation == "sdpa":
        return allowed
    return torch.zeros((), dtype=dtype, device=real.device).masked_fill(~allowed, torch.finfo(dtype).min)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting real tokens only (0 for left padding), so left- and right-padded batches agree."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def layout_speech_batch(before_audio: Sequence[Sequence[int]], token_lengths: Sequence[int] | torch.Tensor,
                        after_audio: Sequence[Sequence[int]] | None = None,
                        targets: Sequence[Sequence[int]] | None = None, pad_id: int = 0,
                        padding_side: Literal["right", "left"] = "right") -> dict[str, torch.Tensor]:
    """Lay out ``[before_audio][audio x token_lengths][after_audio][targets]`` per sample, padded to one length.

    Returns ``input_ids`` (audio positions hold ``pad_id``; :meth:`AuraStudent.embed_sequence` replaces
    them), ``attention_mask``, ``audio_mask`` and, when ``targets`` are given, ``labels`` (the target ids,
    ``-100`` elsewhere). Use ``padding_side="left"`` for generation prompts.

    >>> b = layout_speech_batch([[1, 2]], [3], after_audio=[[4]], targets=[[5, 6]], pad_id=0)
    >>> b["input_ids"].tolist(), b["audio_mask"].int().tolist(), b["labels"].tolist()
    ([[1, 2, 0, 0, 0, 4, 5, 6]], [[0, 0, 1, 1, 1, 0, 0, 0]], [[-100, -100, -100, -100, -100, -100, 5, 6]])
    """
    lengths = [int(n) for n in (token_lengths.tolist() if torch.is_tensor(token_lengths) else token_lengths)]
    size = len(before_audio)
    after_audio = after_audio if after_audio is not None else [[] for _ in range(size)]
    if not len(lengths) == len(after_audio) == size or (targets is not None and len(targets) != size):
        raise ValueError("before_audio, token_lengths, after_audio and targets must have one entry per sample")
    rows = []
    for i in range(size):
        answer = list(targets[i]) if targets is not None else []
        ids = list(before_audio[i]) + [pad_id] * lengths[i] + list(after_audio[i]) + answer
        audio = [0] * len(before_audio[i]) + [1] * lengths[i] + [0] * (len(after_audio[i]) + len(answer))
        labels = [IGNORE_INDEX] * (len(ids) - len(answer)) + answer
        rows.append((ids, audio, labels))
    width = max(len(r[0]) for r in rows)
    out = {k: torch.full((size, width), v, dtype=torch.long)
           for k, v in (("input_ids", pad_id), ("attention_mask", 0), ("audio_mask", 0), ("labels", IGNORE_INDEX))}
    for i, (ids, audio, labels) in enumerate(rows):
        span = slice(0, len(ids)) if padding_side == "right" else slice(width - len(ids), width)
        out["input_ids"][i, span] = torch.tensor(ids, dtype=torch.long)
        out["attention_mask"][i, span] = 1
        out["audio_mask"][i, span] = torch.tensor(audio, dtype=torch.long)
        out["labels"][i, span] = torch.tensor(labels, dtype=torch.long)
    out["audio_mask"] = out["audio_mask"].bool()
    if targets is None:
        del out["labels"]
    return out


# --------------------------------------------------------------------------------------------------
# The student
# --------------------------------------------------------------------------------------------------


def _head_key(teacher_layer: int) -> str:
    return f"layer_{teacher_layer}"


class AuraStudent(nn.Module):
    """A frozen causal LLM (Llama family) + audio patch embedding + LoRA on layers ``[0, K)`` + heads.

    Build with :meth:`from_llm` (or :meth:`load` from a :meth:`save_trainable` file); see the module
    docstring for usage. ``layer_map`` maps teacher layer ``j`` -> student layer ``m`` (1-based output
    of decoder layer ``m``). The LLM must be loaded with ``attn_implementation`` ``"sdpa"`` or ``"eager"``.
    """

    def __init__(self, llm: nn.Module, patch_embedding: AudioPatchEmbedding, heads: nn.ModuleDict,
                 layer_map: dict[int, int], lora_layers: int, bidirectional_audio: bool = True,
                 metadata: dict | None = None):
        super().__init__()
        self.llm = llm  # a peft PeftModel until merge_and_unload(), then the plain LLM
        self.patch_embedding = patch_embedding
        self.heads = heads
        self.layer_map = dict(sorted(layer_map.items()))
        self.lora_layers = lora_layers
        self.bidirectional_audio = bidirectional_audio
        self.metadata = metadata or {}
        decoder = self.decoder
        for attr in ("embed_tokens", "layers", "norm", "rotary_emb"):
            if not hasattr(decoder, attr):
                raise TypeError(f"{type(decoder).__name__} has no {attr!r}: only Llama-family decoders are supported")
        self.layer_map = validate_layer_map(self.layer_map, len(decoder.layers))

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_llm(cls, llm: nn.Module, cfg: StudentConfig, teacher_layers: Sequence[int], teacher_width: int,
                 n_mels: int, pooling: int, mel_settings: MelSettings | None = None) -> "AuraStudent":
        """Wrap ``llm`` (modified in place: peft injects LoRA) into a student.

        K = ``cfg.lora_layers`` or the deepest mapped student layer; the layer map is ``cfg.layer_map``
        (validated) or :func:`default_layer_map` to ``cfg.distill_depth`` (None: half the LLM, at least
        one student layer per teacher layer). All LLM weights are frozen except LoRA; patch
        embedding and heads are created in the LLM's dtype and device and are trainable.
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
        patch = AudioPatchEmbedding(n_mels, width, WHISPER_CONV_STRIDE * pooling, mel_settings=mel_settings)
        heads = nn.ModuleDict({_head_key(j): DistillationHead(width, teacher_width) for j in layer_map})
        patch.to(device=ref.device, dtype=ref.dtype)
        heads.to(device=ref.device, dtype=ref.dtype)
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
        }
        return cls(peft_llm, patch, heads, layer_map, lora_layers, cfg.bidirectional_audio, metadata)

    @classmethod
    def load(cls, llm: nn.Module, path: str | Path) -> "AuraStudent":
        """Rebuild a student around a fresh ``llm`` from a :meth:`save_trainable` file and load its weights."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("aura_student", "null"))
        if not meta:
            raise ValueError(f"{path} is not an AuRA student file (no 'aura_student' metadata)")
        cfg = StudentConfig.model_validate(meta["student"]).model_copy(
            update={"layer_map": {int(j): m for j, m in meta["layer_map"].items()}, "lora_layers": meta["lora_layers"]})
        student = cls.from_llm(llm, cfg, meta["teacher_layers"], meta["teacher_width"], meta["n_mels"],
                               meta["pooling"], MelSettings(**meta["mel_settings"]))
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
        return max(self.layer_map.values())

    @property
    def attn_implementation(self) -> str:
        return self.base_llm.config._attn_implementation

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters to optimise: patch embedding, LoRA A/B of layers ``< K``, distillation heads."""
        return [p for p in self.parameters() if p.requires_grad]

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
        decoder = self.decoder
        upto = len(decoder.layers) if upto is None else upto
        if not 1 <= upto <= len(decoder.layers):
            raise ValueError(f"upto={upto} outside 1..{len(decoder.layers)}")
        wanted = set(collect) if collect is not None else {m for m in self.layer_map.values() if m <= upto}
        mask = build_attention_mask(attention_mask, audio_mask, self.bidirectional_audio,
                                    inputs_embeds.dtype, self.attn_implementation)
        position_ids = position_ids_from_mask(attention_mask)
        position_embeddings = decoder.rotary_emb(inputs_embeds, position_ids=position_ids)
        hidden = inputs_embeds
        states: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(decoder.layers[:upto], start=1):
            hidden = layer(hidden, attention_mask=mask, position_ids=position_ids,
                           position_embeddings=position_embeddings)
            if isinstance(hidden, tuple):  # older transformers returned (hidden, ...)
                hidden = hidden[0]
            if index in wanted:
                states[index] = hidden
        return hidden, states

    def _heads_at_audio(self, states: dict[int, torch.Tensor], audio_mask: torch.Tensor,
                        token_mask: torch.Tensor) -> dict[int, torch.Tensor]:
        """Apply each head to its layer's audio positions, laid out ``(B, T_audio, teacher_width)``."""
        out = {}
        for j, m in self.layer_map.items():
            hidden = states[m]
            if not torch.equal(audio_mask, token_mask):  # mixed sequence: gather the audio positions
                audio = hidden[audio_mask]
                hidden = hidden.new_zeros(*token_mask.shape, hidden.shape[-1]).masked_scatter(
                    token_mask[..., None], audio)
            out[j] = self.heads[_head_key(j)](hidden)
        return out

    def forward_distill(self, mel: torch.Tensor, token_lengths: torch.Tensor,
                        prefix_ids: Sequence[int] | None = None) -> dict:
        """Stage 1: ``[prefix_ids][audio tokens]``, layers run up to the deepest distilled layer (no norm, no lm_head).

        ``prefix_ids`` is the text in front of the audio in stage 2 and at inference
        (:func:`pipeline.prompts.audio_prefix_ids`): with it the audio states are exactly those the later
        stages compute, since text after the audio cannot reach them. Without it the audio starts at position 0.

        Returns ``{"layer_states": {teacher_layer: (B, T, teacher_width)}, "token_mask": (B, T) bool}``
        with ``T = max(token_lengths)``.
        """
        token_lengths = token_lengths.to(mel.device)
        token_mask = torch.arange(int(token_lengths.max()), device=mel.device)[None] < token_lengths[:, None]
        dtype = self.decoder.embed_tokens.weight.dtype
        if not prefix_ids:
            tokens = self.patch_embedding(mel, int(token_lengths.max()))
            _, states = self.forward_layers(tokens.to(dtype), token_mask, token_mask, upto=self.distill_depth)
            return {"layer_states": self._heads_at_audio(states, token_mask, token_mask), "token_mask": token_mask}
        layout = layout_speech_batch([list(prefix_ids)] * mel.shape[0], token_lengths.cpu())
        layout = {k: v.to(mel.device) for k, v in layout.items()}
        embeds = self.embed_sequence(layout["input_ids"], layout["audio_mask"], mel, token_lengths)
        _, states = self.forward_layers(embeds, layout["audio_mask"], layout["attention_mask"], upto=self.distill_depth)
        return {"layer_states": self._heads_at_audio(states, layout["audio_mask"], token_mask), "token_mask": token_mask}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, audio_mask: torch.Tensor | None = None,
                mel: torch.Tensor | None = None, token_lengths: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, return_layer_states: bool = True,
                logits: Literal["all", "labels"] = "all") -> dict:
        """Full forward of a mixed text/audio sequence: logits, distilled layer states and LM loss.

        Returns ``logits`` (``(B, L, vocab)``; with ``logits="labels"`` only ``(N, vocab)`` for the N positions
        that predict a label, which is all training needs: the LM head is a fifth of SmolLM2's weights),
        ``layer_states {j: (B, T_audio, Dt)}`` and ``token_mask`` (when there is audio and
        ``return_layer_states``), and, when ``labels`` are given, ``loss`` (next-token cross-entropy on
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
        if has_audio and return_layer_states:
            token_mask = (torch.arange(int(token_lengths.max()), device=input_ids.device)[None]
                          < token_lengths.to(input_ids.device)[:, None])
            result["layer_states"] = self._heads_at_audio(states, audio_mask.bool(), token_mask)
            result["token_mask"] = token_mask
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
        """``patch_embedding.*``, ``heads.*`` and ``lora.<peft key>`` tensors (what :meth:`save_trainable` writes)."""
        from peft import get_peft_model_state_dict

        state = {f"patch_embedding.{k}": v for k, v in self.patch_embedding.state_dict().items()}
        state.update({f"heads.{k}": v for k, v in self.heads.state_dict().items()})
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

    def load_trainable(self, path: str | Path) -> None:
        """Load a :meth:`save_trainable` file into this student; every expected tensor must be present."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        if not hasattr(self.llm, "peft_config"):
            raise RuntimeError("LoRA was merged into the LLM; there is nothing to load the adapters into")
        tensors = load_file(str(path))
        expected = set(self.trainable_state_dict())
        missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        if missing or unexpected:
            raise ValueError(f"{path} does not fit this student: missing {missing[:5]}, unexpected {unexpected[:5]} "
                             f"({len(missing)} missing, {len(unexpected)} unexpected)")
        self.patch_embedding.load_state_dict(
            {k.removeprefix("patch_embedding."): v for k, v in tensors.items() if k.startswith("patch_embedding.")})
        self.heads.load_state_dict({k.removeprefix("heads."): v for k, v in tensors.items() if k.startswith("heads.")})
        lora = {k.removeprefix("lora."): v for k, v in tensors.items() if k.startswith("lora.")}
        result = set_peft_model_state_dict(self.llm, lora)
        if getattr(result, "unexpected_keys", None):
            raise ValueError(f"LoRA tensors not used by this LLM: {result.unexpected_keys[:5]}")
