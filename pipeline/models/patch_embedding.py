"""The audio patch embedding: how audio reaches the LLM without a speech encoder.

Log-mel frames are cut into patches by a strided ``Conv1d`` (one patch per stored Whisper teacher frame,
``pooling`` teacher frames per patch), normalised and projected to the LLM width; the patches take the
place of tokens in the LLM's input sequence (:mod:`pipeline.models.sequence`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.mel import WHISPER_CONV_STRIDE, MelSettings, log_mel, teacher_frames


def mel_floor(mel: torch.Tensor) -> torch.Tensor:
    """The value :func:`~pipeline.data.mel.log_mel` gives digital silence in each utterance, shape ``(B, 1, 1)``.

    ``log_mel`` clamps the log10 power at ``max(-10, peak - 8)`` and maps ``x -> (x + 4) / 4``, so silence
    (the zeros Whisper pads with) sits at ``max(-1.5, mel.max() - 2)``.
    """
    if mel.shape[-1] == 0:  # shorter than one hop: all silence
        return mel.new_full((*mel.shape[:-2], 1, 1), -1.5)
    peak = mel.amax(dim=(-2, -1), keepdim=True)
    return torch.clamp(peak - 2.0, min=-1.5)


def clip_mean_mel(mel: torch.Tensor) -> torch.Tensor:
    """Each clip's mean log-mel over its frames that are not silence, shape ``(B, n_mels, 1)``.

    Silence (digital zeros, and the padding of a batch) sits exactly at :func:`mel_floor` in every channel; a frame
    with any channel above it counts. So the mean is the clip's own, whatever the batch pads it to: the average
    spectrum of its voice and channel. A clip of silence alone gets zeros.

    >>> mel = torch.full((1, 2, 4), -1.5)          # silence ...
    >>> mel[0, :, 1:3] = torch.tensor([[0.5, 0.3], [-0.5, -0.3]])  # ... around two frames of sound
    >>> [round(v, 3) for v in clip_mean_mel(mel).flatten().tolist()]
    [0.4, -0.4]
    """
    floor = mel_floor(mel)
    sound = (mel > floor).any(dim=-2, keepdim=True).to(mel.dtype)  # (B, 1, T)
    return (mel * sound).sum(dim=-1, keepdim=True) / sound.sum(dim=-1, keepdim=True).clamp(min=1)


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


def whisper_positions(length: int, width: int) -> torch.Tensor:
    """Whisper's encoder positional table ``(length, width)``: sines then cosines over timescales from 1 to 10,000,
    computed in float64 and rounded to fp16 as the released checkpoints store it (Whisper tiny.en's table equals this
    bit for bit), so a file need not carry it (:data:`pipeline.models.student.TEACHER_POSITIONS_KEY`).

    >>> table = whisper_positions(1500, 384)
    >>> table.shape, table.dtype, table[0, :2].tolist(), table[0, -1].item()
    (torch.Size([1500, 384]), torch.float32, [0.0, 0.0], 1.0)
    """
    if width % 2:
        raise ValueError(f"a sinusoidal table needs an even width, got {width}")
    increment = math.log(10_000) / (width // 2 - 1)
    times = torch.arange(length, dtype=torch.float64)[:, None] * torch.exp(
        -increment * torch.arange(width // 2, dtype=torch.float64))[None, :]
    return torch.cat([times.sin(), times.cos()], dim=1).to(torch.float16).to(torch.float32)


class WhisperEncoderBlock(nn.Module):
    """One of Whisper's encoder layers (pre-norm self-attention, then a GELU MLP of 4x the width), with its parameter
    names, so its weights copy over from ``WhisperEncoder.layers[i]`` (:meth:`AudioPatchEmbedding.copy_whisper_stem`).
    Written out rather than imported so an export needs no Whisper class; attention is bidirectional over the frames a
    key mask allows. Every Whisper size has 64-channel heads; the count is a buffer, set from the teacher's config when
    its weights are copied (a small test model has other heads), so it travels with the weights.

    >>> block = WhisperEncoderBlock(128)
    >>> block(torch.randn(2, 7, 128), torch.ones(2, 7, dtype=torch.bool)).shape
    torch.Size([2, 7, 128])
    """

    head_width = 64

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("heads", torch.tensor(max(1, width // self.head_width)))
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.self_attn = nn.ModuleDict({"q_proj": nn.Linear(width, width),
                                        "k_proj": nn.Linear(width, width, bias=False),  # Whisper's keys have no bias
                                        "v_proj": nn.Linear(width, width), "out_proj": nn.Linear(width, width)})
        self.final_layer_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``x (B, T, width)``; ``keys (B, T)`` bool, the frames every frame may attend to."""
        batch, frames, width = x.shape
        attn = self.self_attn
        h = self.self_attn_layer_norm(x)
        q, k, v = (attn[name](h).view(batch, frames, int(self.heads), -1).transpose(1, 2)
                   for name in ("q_proj", "k_proj", "v_proj"))
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=keys[:, None, None, :])
        x = x + attn["out_proj"](mixed.transpose(1, 2).reshape(batch, frames, width))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class AudioPatchEmbedding(nn.Module):
    """Log-mel ``(B, n_mels, T_mel)`` -> audio tokens ``(B, T_mel / stride, llm_width)``.

    Strided ``Conv1d`` (kernel = stride: non-overlapping patches) -> ``LayerNorm`` -> ``Linear``.
    ``stride = 2 * pooling`` makes one token per stored teacher frame (Whisper: 100 mel frames/s,
    50 teacher frames/s). A mel whose length is not a multiple of the stride (or shorter than
    ``num_tokens * stride``) is padded on the right with its silence value (:func:`mel_floor`).
    Options: a convolutional front end refining the mel (``front_end_channels``), and the teacher's own
    convolutional stem, frozen, whose frames reach each token through a projection (``teacher_stem_width``;
    weights from :meth:`copy_whisper_stem`), and after the stem the teacher's first encoder layers, frozen
    (``teacher_blocks``), whose standardised frames reach each token through a projection of their own.

    >>> embed = AudioPatchEmbedding(n_mels=80, llm_width=64, stride=2)
    >>> embed.num_tokens(16000), embed.num_tokens(16001)
    (50, 51)
    >>> mel, lengths = embed.mel_batch([torch.zeros(16001)])
    >>> embed(mel).shape
    torch.Size([1, 51, 64])
    """

    def __init__(self, n_mels: int, llm_width: int, stride: int, hidden: int | None = None,
                 mel_settings: MelSettings | None = None, front_end_channels: int = 0,
                 front_end_clip_mean: bool = False, teacher_stem_width: int = 0, teacher_blocks: int = 0,
                 teacher_positions: int = 1500):
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
        self.front_end = None
        if front_end_clip_mean and not front_end_channels:
            raise ValueError("front_end_clip_mean needs a front end (front_end_channels > 0)")
        self.front_end_clip_mean = front_end_clip_mean
        if front_end_channels:
            # Whisper's encoder starts with two 3-frame convolutions and GELU; here they refine the mel as a
            # residual that starts at zero, so the embedding without it is where training begins. With the clip's
            # mean mel beside each frame it can learn to take out what is the voice's rather than the word's.
            inputs = 2 * n_mels if front_end_clip_mean else n_mels
            self.front_end = nn.Sequential(nn.Conv1d(inputs, front_end_channels, 3), nn.GELU(),
                                           nn.Conv1d(front_end_channels, n_mels, 3))
            nn.init.zeros_(self.front_end[2].weight)
            nn.init.zeros_(self.front_end[2].bias)
        self.teacher_stem, self.stem_proj = None, None
        if teacher_stem_width:
            # Whisper's own stem (conv 3 -> GELU -> conv 3 stride 2 -> GELU), copied from the teacher and frozen: its
            # features come from Whisper's training speech, not from the few voices the student trains on. The
            # projection of each token's `pooling` stem frames starts at zero, so the embedding starts unchanged.
            self.teacher_stem = nn.Sequential(nn.Conv1d(n_mels, teacher_stem_width, 3), nn.GELU(),
                                              nn.Conv1d(teacher_stem_width, teacher_stem_width, 3, stride=2), nn.GELU())
            self.teacher_stem.requires_grad_(False)
            self.stem_proj = nn.Linear(teacher_stem_width * self.pooling, hidden)
            nn.init.zeros_(self.stem_proj.weight)
            nn.init.zeros_(self.stem_proj.bias)
        self.teacher_blocks, self.blocks_proj = None, None
        if teacher_blocks:
            if not teacher_stem_width:
                raise ValueError("teacher_blocks needs the teacher stem (teacher_stem_width > 0)")
            # Whisper's first layers as its encoder runs them: the stem's frames plus its positional table, then
            # the layers, copied and frozen. Their output has a few channels far larger than the rest, so it is
            # standardised per channel (:meth:`set_blocks_statistics`: the distillation targets' statistics of that
            # teacher layer) before its projection (zero at first, so the embedding starts unchanged). The positional
            # table starts as Whisper's formula; :meth:`copy_whisper_stem` copies the teacher's own.
            self.register_buffer("teacher_positions", whisper_positions(teacher_positions, teacher_stem_width))
            self.teacher_blocks = nn.ModuleList(WhisperEncoderBlock(teacher_stem_width) for _ in range(teacher_blocks))
            self.teacher_blocks.requires_grad_(False)
            self.register_buffer("blocks_mean", torch.zeros(teacher_stem_width))
            self.register_buffer("blocks_std", torch.ones(teacher_stem_width))
            self.blocks_proj = nn.Linear(teacher_stem_width * self.pooling, hidden)
            nn.init.zeros_(self.blocks_proj.weight)
            nn.init.zeros_(self.blocks_proj.bias)
        self.norm = nn.LayerNorm(hidden)
        self.proj = nn.Linear(hidden, llm_width)

    def num_tokens(self, num_samples: int) -> int:
        """Tokens for ``num_samples`` of 16 kHz audio: exactly the teacher's stored frames."""
        return teacher_frames(num_samples, self.pooling, self.mel_settings.hop_length)

    def mel_batch(self, audios: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mel, token_lengths)`` for raw 16 kHz utterances; see :func:`audio_mel_batch`."""
        return audio_mel_batch(audios, self.mel_settings, self.pooling)

    def copy_whisper_stem(self, encoder: nn.Module, layers: bool = True) -> None:
        """Copy the stem (``conv1``, ``conv2``) of a Whisper encoder (e.g. ``model.model.encoder``) into
        :attr:`teacher_stem`, and with :attr:`teacher_blocks` its positional table, head count and first layers
        (``layers=False``: the layers keep their fresh initialisation); all stay frozen."""
        if self.teacher_stem is None:
            raise ValueError("this patch embedding has no teacher stem (teacher_stem_width=0)")
        pairs = [(self.teacher_stem[0], encoder.conv1), (self.teacher_stem[2], encoder.conv2)]
        if self.teacher_blocks is not None:
            if len(encoder.layers) <= len(self.teacher_blocks):  # all of them would be the encoder, and its last
                raise ValueError(f"the teacher has {len(encoder.layers)} encoder layers; the student may run fewer, "
                                 f"not {len(self.teacher_blocks)}")  # output is normalised besides
            if layers:
                pairs += list(zip(self.teacher_blocks, encoder.layers))
            for block in self.teacher_blocks:
                block.heads.fill_(encoder.config.encoder_attention_heads)
        for mine, whisper in pairs:
            ours, theirs = dict(mine.named_parameters()), whisper.state_dict()
            if {k: v.shape for k, v in ours.items()} != {k: theirs[k].shape for k in ours if k in theirs}:
                raise ValueError(f"the teacher's {type(whisper).__name__} does not fit this one "
                                 f"({type(mine).__name__}, width {self.teacher_stem[0].out_channels})")
            with torch.no_grad():
                for name, param in ours.items():
                    param.copy_(theirs[name])
        if self.teacher_blocks is not None:
            table = encoder.embed_positions.weight
            if table.shape != self.teacher_positions.shape:
                raise ValueError(f"the teacher's positional table is {tuple(table.shape)}, this one "
                                 f"{tuple(self.teacher_positions.shape)}")
            with torch.no_grad():
                self.teacher_positions.copy_(table)

    def set_blocks_statistics(self, mean: torch.Tensor | np.ndarray, std: torch.Tensor | np.ndarray) -> None:
        """The per-channel mean and standard deviation of the teacher layer :attr:`teacher_blocks` ends at (those that
        standardise the distillation targets: the feature store's training split), which standardise its frames
        before their projection."""
        if self.teacher_blocks is None:
            raise ValueError("this patch embedding has no teacher blocks (teacher_blocks=0)")
        with torch.no_grad():
            self.blocks_mean.copy_(torch.as_tensor(np.asarray(mean), dtype=self.blocks_mean.dtype))
            self.blocks_std.copy_(torch.as_tensor(np.asarray(std), dtype=self.blocks_std.dtype))

    def blocks_features(self, mel: torch.Tensor, stem_frames: torch.Tensor) -> torch.Tensor:
        """The teacher blocks' standardised output ``(B, T_mel / 2, width)`` from the stem's ``(B, T_mel / 2, width)``
        frames. Each frame attends to the clip's frames up to its last sound (the mel above its silence value in
        some channel), so a clip alone and padded with silence in a batch get the same tokens."""
        frames = stem_frames.shape[1]
        if frames > self.teacher_positions.shape[0]:
            raise ValueError(f"{frames} teacher frames ({frames / 50:.1f} s) exceed the teacher's "
                             f"{self.teacher_positions.shape[0]} positions")
        sound = (mel > mel_floor(mel)).any(dim=1)  # (B, T_mel)
        last = torch.where(sound.any(dim=1), sound.shape[1] - 1 - sound.flip(1).int().argmax(dim=1), 0)
        # Stem frame f is centred on mel frame 2f (the second convolution has stride 2): keys end at the last sound,
        # inside the clip's own tokens whatever the batch pads it to.
        keys = torch.arange(frames, device=mel.device)[None, :] * 2 <= last[:, None]
        x = stem_frames + self.teacher_positions[:frames].to(stem_frames.dtype)
        for block in self.teacher_blocks:
            x = block(x, keys)
        return (x - self.blocks_mean.to(x.dtype)) / self.blocks_std.to(x.dtype)

    def stem_features(self, mel: torch.Tensor) -> torch.Tensor:
        """The teacher stem's output ``(B, width, T_mel / 2)``: Whisper's, frame for frame, with the clip's silence
        where Whisper's convolutions pad with zeros (at the end of a clip Whisper sees its window's silence too, so
        only the first frame differs from the teacher's own)."""
        return self.teacher_stem(self._silence_framed(mel))

    @staticmethod
    def _silence_framed(mel: torch.Tensor) -> torch.Tensor:
        """The mel with two frames of its silence on each side: unpadded 3-frame convolutions then give one output
        per frame (per two frames after a stride of 2), and a clip alone and the same clip padded with silence in a
        batch get the same tokens."""
        edge = mel_floor(mel).expand(mel.shape[0], mel.shape[1], 2)
        return torch.cat([edge, mel, edge], dim=-1)

    def _front_end_input(self, mel: torch.Tensor) -> torch.Tensor:
        """The mel framed in silence (:meth:`_silence_framed`), and the clip's mean mel beside every frame if
        ``front_end_clip_mean``."""
        framed = self._silence_framed(mel)
        if not self.front_end_clip_mean:
            return framed
        return torch.cat([framed, clip_mean_mel(mel).expand_as(framed)], dim=1)

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
        stem = None
        if self.teacher_stem is not None:  # reads the mel as Whisper would, before any front end
            frames = self.stem_features(mel).transpose(1, 2)  # (B, tokens * pooling, width)
            stem = self.stem_proj(frames.reshape(frames.shape[0], num_tokens, -1))
            if self.teacher_blocks is not None:
                blocks = self.blocks_features(mel, frames)
                stem = stem + self.blocks_proj(blocks.reshape(blocks.shape[0], num_tokens, -1))
        if self.front_end is not None:
            mel = mel + self.front_end(self._front_end_input(mel))
        patches = self.patchify(mel).transpose(1, 2)  # (B, tokens, hidden)
        if stem is not None:
            patches = patches + stem
        return self.proj(self.norm(patches))
