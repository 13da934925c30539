"""Audio decoding, validation and resampling (soundfile + scipy; no torchaudio).

Every input goes through :func:`load_checked`, which either returns 16 kHz mono float32 samples or
raises :class:`AudioRejected` with a reason a person can act on.

Usage::

    >>> from pipeline.data.audio import load_checked
    >>> audio = load_checked("speech.wav", IngestConfig())      # doctest: +SKIP
    >>> audio.samples.dtype, audio.sample_rate  # doctest: +SKIP
    (dtype('float32'), 16000)
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from pipeline.config import IngestConfig

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus")


class AudioRejected(ValueError):
    """An input cannot be used; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckedAudio:
    """Mono float32 samples at the target rate, plus what the source was."""

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    source_subtype: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def speechlike(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, amplitude-modulated test signal (harmonics of a random pitch, a 3 Hz envelope, a little
    noise): loud enough to pass the silence check, not a pure tone; for tests and benchmarks.

    >>> x = speechlike(0.5)
    >>> x.dtype, x.shape, bool(0.05 < abs(x).max() < 1)
    (dtype('float32'), (8000,), True)
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * rng.random()
    voiced = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased), float32 in and out."""
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    g = gcd(source_rate, target_rate)
    out = resample_poly(samples.astype(np.float64), target_rate // g, source_rate // g)
    return out.astype(np.float32)


def peak_window_dbfs(samples: np.ndarray, sample_rate: int, window_s: float = 0.02) -> float:
    """Level (dBFS) of the loudest ``window_s`` window: silence-only audio is far below speech."""
    win = max(1, int(sample_rate * window_s))
    n = len(samples) // win
    if n == 0:
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    else:
        frames = samples[: n * win].astype(np.float64).reshape(n, win)
        rms = float(np.sqrt(np.mean(frames**2, axis=1)).max())
    return 20.0 * np.log10(max(rms, 1e-10))


def decode(data: bytes | str | Path) -> tuple[np.ndarray, int, str]:
    """Decode audio bytes or a file to float32 ``(frames, channels)``, its rate and subtype.

    Raises :class:`AudioRejected` for empty, truncated or non-audio input.
    """
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.stat().st_size == 0:
            raise AudioRejected("empty file (0 bytes)")
        source: object = str(path)
    else:
        if len(data) == 0:
            raise AudioRejected("empty file (0 bytes)")
        source = io.BytesIO(data)
    try:
        with sf.SoundFile(source) as f:
            subtype = f.subtype
            rate = f.samplerate
            samples = f.read(dtype="float32", always_2d=True)
            container = f.format
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        # libsndfile names the in-memory buffer by its address: keep the reason reproducible
        message = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the data", str(exc))
        raise AudioRejected(f"not readable as audio ({message})") from None
    if container == "WAV":
        _check_wav_not_truncated(Path(data).read_bytes() if isinstance(data, (str, Path)) else data)
    return samples, rate, subtype


def _check_wav_not_truncated(data: bytes) -> None:
    """libsndfile quietly reads what is there of a cut-off WAV (a FLAC loses sync and fails): compare
    the ``data`` chunk's declared size with the bytes the file holds."""
    position = 12  # after "RIFF", the RIFF size and "WAVE"
    while position + 8 <= len(data):
        chunk_id, size = data[position : position + 4], int.from_bytes(data[position + 4 : position + 8], "little")
        if chunk_id == b"data":
            held = len(data) - position - 8
            if size != 0xFFFFFFFF and held < size:  # 0xFFFFFFFF: a streamed WAV of unknown length
                raise AudioRejected(f"truncated: the WAV header declares {size} bytes of audio, the file holds {held}")
            return
        position += 8 + size + (size & 1)


def check(samples: np.ndarray, rate: int, subtype: str, cfg: IngestConfig) -> CheckedAudio:
    """Validate decoded ``(frames, channels)`` audio and convert it to mono at ``cfg.sample_rate``."""
    channels = samples.shape[1]
    if samples.shape[0] == 0:
        raise AudioRejected("no audio samples (header only)")
    if channels > cfg.max_channels:
        raise AudioRejected(f"{channels} channels; at most {cfg.max_channels} are accepted")
    if not np.isfinite(samples).all():
        raise AudioRejected("samples contain NaN or Inf")
    duration = samples.shape[0] / rate
    if duration > cfg.max_duration_s:
        raise AudioRejected(f"too long: {duration:.2f} s > max_duration_s={cfg.max_duration_s:g} s")
    if duration < cfg.min_duration_s:
        raise AudioRejected(f"too short: {duration:.3f} s < min_duration_s={cfg.min_duration_s:g} s")
    mono = samples.mean(axis=1) if channels > 1 else samples[:, 0]
    mono = resample(mono, rate, cfg.sample_rate)
    # Resampling can overshoot full scale by a hair; FLAC stores int16, so clip once here.
    mono = np.clip(mono, -1.0, 1.0)
    level = peak_window_dbfs(mono, cfg.sample_rate)
    if level < cfg.silence_dbfs:
        raise AudioRejected(f"silent: loudest 20 ms at {level:.1f} dBFS < silence_dbfs={cfg.silence_dbfs:g}")
    return CheckedAudio(mono, cfg.sample_rate, rate, channels, subtype)


def load_checked(data: bytes | str | Path, cfg: IngestConfig) -> CheckedAudio:
    """Decode, validate and convert one input; raises :class:`AudioRejected` with the reason."""
    samples, rate, subtype = decode(data)
    return check(samples, rate, subtype, cfg)


def to_flac_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float32 samples as 16-bit FLAC."""
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def from_flac_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode FLAC bytes from a shard to mono float32 and its rate."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return samples, rate


def quantize_pcm16(samples: np.ndarray) -> np.ndarray:
    """What a float32 signal becomes after a 16-bit PCM round trip (as libsndfile does it)."""
    return (np.clip(np.round(samples * 32768.0), -32768, 32767) / 32768.0).astype(np.float32)
