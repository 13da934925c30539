"""Shared fixtures: small real audio written to disk, and a tmp working directory."""

from __future__ import annotations

import os

# DeepSpeed / torch on CPU: one thread per worker is much faster on this 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def speechlike(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, amplitude-modulated signal: loud enough to pass the silence check, not a pure tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * rng.random()
    voiced = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.2 * voiced * envelope + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture
def write_wav():
    """Write a speech-like wav (and optional transcript sidecar); returns the path."""

    def _write(path: Path, seconds: float = 1.0, rate: int = 16000, text: str | None = "hello world",
               seed: int = 0, channels: int = 1, subtype: str = "PCM_16") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = speechlike(seconds, rate, seed)
        if channels > 1:
            audio = np.stack([audio] * channels, axis=1)
        sf.write(path, audio, rate, subtype=subtype)
        if text is not None:
            path.with_suffix(".txt").write_text(text)
        return path

    return _write
