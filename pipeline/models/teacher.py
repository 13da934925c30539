"""The frozen Whisper encoder as a teacher: per-layer hidden states for the frames of real audio.

Whisper always encodes a 30 s window (transformers refuses other lengths); the teacher pads each
utterance to 30 s as Whisper does, then keeps only the frames that cover real audio and average-pools
them by the store's pooling factor.

Usage::

    >>> teacher = WhisperTeacher.from_spec("bundled:whisper-tiny.en", cache_dir, layers=[2, 4])  # doctest: +SKIP
    >>> states = teacher.encode([audio_16k])       # list of float32 (layers, frames, width)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pipeline.data.mel import WHISPER_WINDOW_SAMPLES, MelSettings, log_mel, mel_settings_of, teacher_frames


class TeacherInputError(ValueError):
    """One utterance cannot be encoded (e.g. longer than Whisper's 30 s window)."""


class WhisperTeacher:
    """Wraps a Whisper encoder; see the module docstring."""

    def __init__(self, encoder: torch.nn.Module, mel: MelSettings, layers: Sequence[int] | None = None,
                 pooling: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.encoder = encoder.eval().requires_grad_(False).to(device=device, dtype=dtype)
        self.mel = mel
        self.num_layers = encoder.config.encoder_layers
        self.width = encoder.config.d_model
        self.layers = list(layers) if layers is not None else list(range(1, self.num_layers + 1))
        bad = [j for j in self.layers if not 0 <= j <= self.num_layers]
        if bad:
            raise ValueError(f"teacher layers {bad} out of range 0..{self.num_layers} for this Whisper")
        self.pooling = pooling
        self.device = torch.device(device)
        self.dtype = dtype

    @classmethod
    def from_spec(cls, spec: str, cache_dir: Path, layers: Sequence[int] | None = None, pooling: int = 1,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  trust_remote_code: bool = False) -> "WhisperTeacher":
        """Load the teacher from a model spec (see :mod:`pipeline.models.sources`)."""
        from pipeline.models.sources import load_whisper

        model, feature_extractor, _ = load_whisper(spec, cache_dir, trust_remote_code=trust_remote_code)
        mel = mel_settings_of(feature_extractor)
        return cls(model.get_encoder(), mel, layers, pooling, device, dtype)

    def frames(self, num_samples: int) -> int:
        return teacher_frames(num_samples, self.pooling, self.mel.hop_length)

    @torch.inference_mode()
    def encode(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-layer states ``(layers, frames, width)`` float32 for each 16 kHz mono utterance."""
        for audio in batch:
            if len(audio) > WHISPER_WINDOW_SAMPLES:
                raise TeacherInputError(f"{len(audio) / 16000:.2f} s is longer than Whisper's 30 s window")
            if len(audio) == 0:
                raise TeacherInputError("empty audio")
        padded = torch.zeros(len(batch), WHISPER_WINDOW_SAMPLES)
        for i, audio in enumerate(batch):
            padded[i, : len(audio)] = torch.from_numpy(np.asarray(audio, dtype=np.float32))
        features = log_mel(padded.to(self.device), self.mel).to(self.dtype)
        out = self.encoder(input_features=features, output_hidden_states=True)
        stacked = torch.stack([out.hidden_states[j] for j in self.layers], dim=1)  # (B, L, T, D)
        results = []
        for i, audio in enumerate(batch):
            keep = teacher_frames(len(audio), 1, self.mel.hop_length)
            states = stacked[i, :, :keep].float()
            if self.pooling > 1:
                states = _average_pool(states, self.pooling)
            results.append(states.cpu().numpy())
        return results


def _average_pool(states: torch.Tensor, pooling: int) -> torch.Tensor:
    """Non-overlapping average over time of ``(layers, frames, width)``; a short last window is averaged as is."""
    layers, frames, width = states.shape
    out_frames = -(-frames // pooling)
    pad = out_frames * pooling - frames
    summed = torch.nn.functional.pad(states, (0, 0, 0, pad)).reshape(layers, out_frames, pooling, width).sum(2)
    counts = torch.full((out_frames,), float(pooling), device=states.device)
    if pad:
        counts[-1] = pooling - pad
    return summed / counts[None, :, None]
