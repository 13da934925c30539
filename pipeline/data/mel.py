"""Whisper's log-mel front end in torch, and the frame arithmetic shared by teacher and student.

The teacher sees Whisper's standard input (audio padded to 30 s, 3000 mel frames); the student sees
the log-mel of the unpadded audio. Both count frames with :func:`teacher_frames`, so one student
token lines up with one stored teacher frame.

Usage::

    >>> import torch
    >>> from pipeline.data.mel import MelSettings, log_mel, teacher_frames
    >>> mel = log_mel(torch.zeros(16000), MelSettings(n_mels=80))
    >>> mel.shape                     # (n_mels, samples // hop)
    torch.Size([80, 100])
    >>> teacher_frames(16000, pooling=1), teacher_frames(16000, pooling=2)
    (50, 25)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

# One definition of the mel front end: the store fingerprint records exactly these settings.
from feature_store.fingerprint import MelSettings

WHISPER_SAMPLE_RATE = 16000
WHISPER_WINDOW_SAMPLES = 30 * WHISPER_SAMPLE_RATE
# Whisper's encoder halves the mel frame rate with its second (stride-2) convolution.
WHISPER_CONV_STRIDE = 2


def mel_settings_of(feature_extractor) -> MelSettings:
    """The :class:`MelSettings` of a ``WhisperFeatureExtractor``."""
    return MelSettings(n_mels=feature_extractor.feature_size, sampling_rate=feature_extractor.sampling_rate,
                       hop_length=feature_extractor.hop_length, n_fft=feature_extractor.n_fft)


@lru_cache(maxsize=8)
def _filters(settings: MelSettings) -> torch.Tensor:
    bank = mel_filter_bank(
        num_frequency_bins=1 + settings.n_fft // 2,
        num_mel_filters=settings.n_mels,
        min_frequency=0.0,
        max_frequency=settings.sampling_rate / 2,
        sampling_rate=settings.sampling_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.ascontiguousarray(bank.T)).float()


def log_mel(audio: torch.Tensor, settings: MelSettings) -> torch.Tensor:
    """Whisper-normalised log-mel of ``(samples,)`` or ``(batch, samples)`` audio.

    Identical to ``WhisperFeatureExtractor`` on the same samples; frames = samples // hop.
    """
    audio = audio.float()
    window = torch.hann_window(settings.n_fft, device=audio.device)
    stft = torch.stft(audio, settings.n_fft, settings.hop_length, window=window, return_complex=True)
    power = (stft[..., :-1].abs() ** 2).contiguous()
    mel = _filters(settings).to(audio.device) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0


def teacher_frames(num_samples: int, pooling: int = 1, hop_length: int = 160) -> int:
    """Teacher frames that cover ``num_samples`` of real audio, after ``pooling`` (Whisper's padding trimmed)."""
    encoder_frames = math.ceil(num_samples / (hop_length * WHISPER_CONV_STRIDE))
    return math.ceil(encoder_frames / pooling)


def frame_rate_hz(pooling: int = 1, settings: MelSettings | None = None) -> float:
    """Stored teacher frames per second of audio (50 Hz for Whisper, divided by the pooling)."""
    settings = settings or MelSettings()
    return settings.sampling_rate / (settings.hop_length * WHISPER_CONV_STRIDE * pooling)
