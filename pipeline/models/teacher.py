"""The frozen Whisper encoder as a teacher: per-layer hidden states for the frames of real audio.

Two window modes (``StoreConfig.window``, recorded in the store fingerprint):

* ``"full"``: every utterance is padded to Whisper's 30 s window (3000 mel frames, 1500 encoder
  frames) exactly as Whisper does, encoded by transformers' own ``WhisperEncoder``, and only the
  frames that cover real audio are kept. On a 3 s clip ~90 % of that work is padding.
* ``"trim"``: the encoder runs on a shorter window. A batch's clips are sorted by length and grouped
  into buckets whose window is the clip length rounded up to ``window_step_s`` (at least
  ``min_window_s``); each bucket is one forward pass. Shorter clips of a bucket are padded the way
  Whisper pads (zeros in the audio, then the log-mel of the padded audio with Whisper's peak
  normalisation): the bucket's mel frames are exactly the first frames of the clip's 30 s mel. The
  encoder is then run by :meth:`WhisperTeacher._run_encoder`, which mirrors
  ``WhisperEncoder.forward`` (conv1 -> gelu -> conv2 -> gelu -> + positions[:T] -> layers -> final
  layer norm; no attention mask, as Whisper never masks) on ``T`` frames instead of 1500. The states
  differ from the full window's (attention sees less padding); ``benchmarks/teacher_window_bench.py``
  measures by how much. A window that would reach 30 s uses the ``"full"`` path, so a 30 s clip gets
  identical states in both modes.

In both modes the kept frames (:func:`~pipeline.data.mel.teacher_frames`) and the average pooling
by the store's pooling factor are the same.

Usage::

    >>> teacher = WhisperTeacher.from_spec("bundled:whisper-tiny.en", cache_dir, layers=[2, 4],
    ...                                    window="trim")                    # doctest: +SKIP
    >>> states = teacher.encode([audio_16k])  # list of float32 (layers, frames, width)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from pipeline.data.mel import (
    WHISPER_CONV_STRIDE,
    WHISPER_SAMPLE_RATE,
    WHISPER_WINDOW_SAMPLES,
    MelSettings,
    log_mel,
    mel_settings_of,
    teacher_frames,
)

Window = Literal["full", "trim"]
#: Default bucket granularity and minimum window of the "trim" mode, chosen by
#: benchmarks/teacher_window_bench.py (2-4 s clips, tiny.en): 2 s buckets are ~21x faster than the full
#: window with a higher cosine to it than 1 s or 0.5 s buckets (last layer 0.974 vs 0.962 / 0.955).
DEFAULT_WINDOW_STEP_S = 2.0
DEFAULT_MIN_WINDOW_S = 0.0


def window_options(settings) -> dict:
    """:class:`WhisperTeacher` window keyword arguments of a ``StoreFingerprint`` or a
    ``StoreConfig`` (both name them alike), so that a live teacher encodes as the store did."""
    if settings.window == "full":
        return {"window": "full"}
    return {"window": "trim", "window_step_s": settings.window_step_s, "min_window_s": settings.min_window_s}


class TeacherInputError(ValueError):
    """One utterance cannot be encoded (e.g. longer than Whisper's 30 s window)."""


class WhisperTeacher:
    """Wraps a Whisper encoder; see the module docstring."""

    def __init__(self, encoder: torch.nn.Module, mel: MelSettings, layers: Sequence[int] | None = None,
                 pooling: int = 1, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 window: Window = "full", window_step_s: float = DEFAULT_WINDOW_STEP_S,
                 min_window_s: float = DEFAULT_MIN_WINDOW_S):
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
        if window not in ("full", "trim"):
            raise ValueError(f"window must be 'full' or 'trim', got {window!r}")
        self.window = window
        # One encoder frame is conv-stride x hop samples (320 at 16 kHz): windows are multiples of it.
        self._frame_samples = WHISPER_CONV_STRIDE * mel.hop_length
        self.window_step = _samples_of(window_step_s, mel, self._frame_samples, "window_step_s", minimum=1)
        self.min_window = _samples_of(min_window_s, mel, self._frame_samples, "min_window_s", minimum=0)

    @classmethod
    def from_spec(cls, spec: str, cache_dir: Path, layers: Sequence[int] | None = None, pooling: int = 1,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                  trust_remote_code: bool = False, window: Window = "full",
                  window_step_s: float = DEFAULT_WINDOW_STEP_S,
                  min_window_s: float = DEFAULT_MIN_WINDOW_S) -> "WhisperTeacher":
        """Load the teacher from a model spec (see :mod:`pipeline.models.sources`)."""
        from pipeline.models.sources import load_whisper

        model, feature_extractor, _ = load_whisper(spec, cache_dir, trust_remote_code=trust_remote_code)
        mel = mel_settings_of(feature_extractor)
        return cls(model.get_encoder(), mel, layers, pooling, device, dtype, window=window,
                   window_step_s=window_step_s, min_window_s=min_window_s)

    def frames(self, num_samples: int) -> int:
        return teacher_frames(num_samples, self.pooling, self.mel.hop_length)

    def window_samples(self, num_samples: int) -> int:
        """Audio samples of the window that encodes a clip of ``num_samples`` (30 s in "full" mode)."""
        if self.window == "full":
            return WHISPER_WINDOW_SAMPLES
        window = max(-(-num_samples // self.window_step) * self.window_step, self.min_window)
        return min(window, WHISPER_WINDOW_SAMPLES)

    @torch.inference_mode()
    def encode(self, batch: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-layer states ``(layers, frames, width)`` float32 for each 16 kHz mono utterance."""
        for audio in batch:
            if len(audio) > WHISPER_WINDOW_SAMPLES:
                raise TeacherInputError(f"{len(audio) / WHISPER_SAMPLE_RATE:.2f} s is longer than Whisper's 30 s window")
            if len(audio) == 0:
                raise TeacherInputError("empty audio")
        buckets: dict[int, list[int]] = {}
        order = range(len(batch)) if self.window == "full" else sorted(range(len(batch)), key=lambda i: len(batch[i]))
        for i in order:
            buckets.setdefault(self.window_samples(len(batch[i])), []).append(i)
        results: list[np.ndarray | None] = [None] * len(batch)
        for window, members in buckets.items():
            stacked = self.encode_window([batch[i] for i in members], window)  # (B, L, T, D)
            for row, i in enumerate(members):
                keep = teacher_frames(len(batch[i]), 1, self.mel.hop_length)
                states = stacked[row, :, :keep].float()
                if self.pooling > 1:
                    states, _ = average_pool(states, self.pooling)
                results[i] = states.cpu().numpy()
        return results  # type: ignore[return-value]

    def window_features(self, batch: Sequence[np.ndarray], window: int) -> torch.Tensor:
        """Log-mel ``(B, n_mels, window // hop)`` of the clips zero-padded to ``window`` samples.

        Whisper's features of a clip are the log-mel of the clip zero-padded to 30 s, normalised by
        the peak over the whole window (floored at peak - 8). Zero audio gives exactly the floor
        value log10(1e-10) = -10, below any real peak, so only the frames that touch audio set the
        peak. The clips are therefore padded to ``window + n_fft`` samples (no STFT frame that is
        kept, nor any frame that touches audio, reaches the reflect-padded edge) and the first
        ``window // hop`` frames are kept: they equal the first frames of Whisper's 30 s features.
        """
        if window >= WHISPER_WINDOW_SAMPLES:
            padded = torch.zeros(len(batch), WHISPER_WINDOW_SAMPLES)
        else:
            padded = torch.zeros(len(batch), window + self.mel.n_fft)
        for i, audio in enumerate(batch):
            padded[i, : len(audio)] = torch.from_numpy(np.asarray(audio, dtype=np.float32))
        features = log_mel(padded.to(self.device), self.mel)
        return features[..., : window // self.mel.hop_length]

    def encode_window(self, batch: Sequence[np.ndarray], window: int) -> torch.Tensor:
        """Selected hidden states ``(B, layers, window // 320, width)`` of clips (each at most
        ``window`` samples) encoded together in one window; no frames dropped, no pooling."""
        features = self.window_features(batch, window).to(self.dtype)
        if window >= WHISPER_WINDOW_SAMPLES:  # Whisper's own window: transformers' encoder as is
            hidden = self.encoder(input_features=features, output_hidden_states=True).hidden_states
        else:
            hidden = self._run_encoder(features)
        return torch.stack([hidden[j] for j in self.layers], dim=1)

    def _run_encoder(self, features: torch.Tensor) -> list[torch.Tensor | None]:
        """``WhisperEncoder.forward`` with ``output_hidden_states=True`` on ``T <= 3000`` mel frames.

        Mirrors transformers' code (5.x): conv1 -> gelu -> conv2 -> gelu -> + embed_positions[:T/2]
        -> (dropout, a no-op in eval) -> each encoder layer with ``attention_mask=None`` (the layer's
        own attention implementation, eager or sdpa, as configured) -> final layer norm. The hidden
        states are as transformers collects them: index 0 the embeddings, index i < L the output of
        layer i, index L the output of layer L after the final layer norm. Layers deeper than the
        deepest requested one are skipped (their entries are None).
        """
        enc = self.encoder
        frames = features.shape[-1] // (enc.conv1.stride[0] * enc.conv2.stride[0])
        if frames > enc.config.max_source_positions:
            raise ValueError(f"{features.shape[-1]} mel frames exceed Whisper's window")
        x = torch.nn.functional.gelu(enc.conv1(features))
        x = torch.nn.functional.gelu(enc.conv2(x))
        x = x.permute(0, 2, 1)
        positions = torch.arange(x.shape[1], device=x.device)
        x = x + enc.embed_positions(positions)
        hidden: list[torch.Tensor | None] = [x]
        deepest = max(self.layers)
        for index, layer in enumerate(enc.layers, start=1):
            if index > deepest:
                hidden.append(None)
                continue
            x = layer(x, None)
            hidden.append(x)
        if deepest == len(enc.layers):
            hidden[-1] = enc.layer_norm(x)
        return hidden


def _samples_of(seconds: float, mel: MelSettings, frame_samples: int, name: str, minimum: int) -> int:
    """``seconds`` as audio samples, which must be a whole number of encoder frames (0.02 s)."""
    samples = seconds * mel.sampling_rate
    frames = samples / frame_samples
    if frames < minimum or not math.isclose(frames, round(frames), abs_tol=1e-6):
        raise ValueError(f"{name}={seconds} must be a multiple of {frame_samples / mel.sampling_rate} s "
                         f"(one encoder frame){' and > 0' if minimum else ''}")
    return int(round(frames)) * frame_samples


def average_pool(states: torch.Tensor, pooling: int, lengths: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Non-overlapping average over time of ``(..., frames, width)``; a short last window is averaged as is.

    ``lengths`` (one per entry of the first dimension) marks the valid frames of a zero-padded batch; the
    pooled lengths come back beside the pooled states. Pooling stored states by ``k`` gives what a store
    with ``k`` times the pooling holds: the frame counts agree with :func:`~pipeline.data.mel.teacher_frames`.

    >>> pooled, n = average_pool(torch.tensor([[[1.0], [3.0], [5.0], [0.0]]]), 2, torch.tensor([3]))
    >>> pooled.flatten().tolist(), n.tolist()
    ([2.0, 5.0], [2])
    """
    if pooling == 1:
        return states, lengths
    frames, width = states.shape[-2:]
    out_frames = -(-frames // pooling)
    pad = out_frames * pooling - frames
    padded = torch.nn.functional.pad(states, (0, 0, 0, pad))
    summed = padded.reshape(*states.shape[:-2], out_frames, pooling, width).sum(-2)
    valid = torch.full((1,), frames, device=states.device) if lengths is None else lengths.to(states.device)
    starts = torch.arange(out_frames, device=states.device) * pooling
    counts = (valid[:, None] - starts[None]).clamp(0, pooling).to(states.dtype)  # (B or 1, out_frames)
    shape = (counts.shape[0],) + (1,) * (states.ndim - 3) + (out_frames, 1)
    pooled = summed / counts.clamp(min=1).reshape(shape)
    return pooled, (None if lengths is None else -(-lengths // pooling))


def whisper_transcripts(clips: Sequence[np.ndarray], spec: str, cache_dir: Path, batch_size: int = 8,
                        progress: str | None = None) -> list[str]:
    """Greedy transcripts of 16 kHz clips by a Whisper model (the teacher's, by default); ``progress``, when given,
    labels a progress bar over the clips (hundreds of clips take minutes on CPU)."""
    import copy

    from tqdm.auto import tqdm

    from pipeline.cluster import quiet_transformers
    from pipeline.models.sources import load_whisper

    out: list[str] = []
    with quiet_transformers(), torch.inference_mode():
        model, feature_extractor, tokenizer = load_whisper(spec, cache_dir)
        generation = copy.deepcopy(model.generation_config)
        generation.max_length, generation.max_new_tokens, generation.num_beams, generation.do_sample = None, 120, 1, False
        with tqdm(total=len(clips), desc=progress, unit="clip", disable=progress is None) as bar:
            for start in range(0, len(clips), batch_size):
                batch = [np.asarray(c, dtype=np.float32) for c in clips[start:start + batch_size]]
                features = feature_extractor(batch, sampling_rate=WHISPER_SAMPLE_RATE, return_tensors="pt").input_features
                ids = model.generate(features, generation_config=generation)
                out += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
                bar.update(len(batch))
    return out
