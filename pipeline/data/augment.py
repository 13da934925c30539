"""Per-utterance acoustic augmentation: gain, background noise, room reverberation, telephone band,
another speaker's voice, a recoloured spectrum, and masked mel bands and stretches.

Each utterance's augmentation is drawn once from its own seeded RNG (:func:`draw_augmentation`), stored
in the manifest with the row, and applied by :func:`apply_augmentation` with maintained libraries:
``audiomentations`` for coloured noise at a signal-to-noise ratio, Spotify's ``pedalboard`` for the
room (Freeverb), the telephone band (300-3400 Hz filters) and the GSM full-rate codec.

A :class:`SpeakerShift` (:func:`draw_speaker_shift`, :func:`apply_speaker_shift`) makes the clip sound
like another speaker: Praat's *Change gender* (through ``parselmouth``) scales the formants (the vocal
tract's length) and the pitch while keeping the timing, sample for sample. Training uses it on the
student's side only (``train.speaker_shift``): the student hears a new speaker, its targets (the
teacher's states of the original clip, the transcript) stay, so it learns what does not depend on the voice.
An :class:`Equalizer` (:func:`draw_equalizer`, :func:`apply_equalizer`) recolours the clip's spectrum the same way
(``train.equalizer``): six peak filters an octave apart (``pedalboard``), each boosting or cutting its band, as another
voice quality, microphone or room colours a voice.

:class:`SpecMasks` (:func:`draw_spec_masks`, :func:`apply_spec_masks`) is SpecAugment's masking (Park et al.
2019) on the student's log-mel: a few bands of mel channels and stretches of frames are replaced by the clip's
mean, on the student's side only (``train.spec_freq_masks``, ``train.spec_time_masks``); the targets are the
unmasked clip's, so no single band (a voice's formants, its pitch harmonics) or stretch can be relied on.

Usage::

    >>> import numpy as np, random
    >>> from pipeline.data.augment import Augmentation, apply_augmentation, draw_augmentation
    >>> from pipeline.data.augment import SpeakerShiftOdds, apply_speaker_shift, draw_speaker_shift
    >>> aug = draw_augmentation(random.Random(3))
    >>> sorted(aug.to_dict())
    ['gain_db', 'noise_snr_db', 'reverb_room', 'telephone']
    >>> audio = np.sin(np.linspace(0, 800, 16000)).astype(np.float32) * 0.3
    >>> out = apply_augmentation(audio, Augmentation(gain_db=-6.0, noise_snr_db=20.0, seed=1))
    >>> out.shape == audio.shape and out.dtype == np.float32
    True
    >>> bool(np.array_equal(out, apply_augmentation(audio, Augmentation(gain_db=-6.0, noise_snr_db=20.0, seed=1))))
    True
    >>> shift = draw_speaker_shift(random.Random(0), SpeakerShiftOdds(1.0, (0.88, 1.15), (0.8, 1.25)))
    >>> shift
    SpeakerShift(formant_ratio=1.085, pitch_factor=0.989, seed=556019485)
    >>> apply_speaker_shift(audio, shift).shape == audio.shape       # the timing stays
    True
    >>> from pipeline.data.augment import Equalizer, EqualizerOdds, apply_equalizer, draw_equalizer
    >>> draw_equalizer(random.Random(1), EqualizerOdds(1.0, 9.0))
    Equalizer(gains_db=(6.25, 4.75, -4.41, -0.08, -0.91, 2.73))
    >>> apply_equalizer(audio, Equalizer((0.0, 3.0, -6.0, 0.0, 9.0, 0.0))).shape == audio.shape
    True
    >>> import torch
    >>> masks = draw_spec_masks(random.Random(0), SpecMaskOdds(2, 10, 1, 0.1), n_mels=80, frames=200)
    >>> masks
    SpecMasks(bands=((53, 6), (33, 0)), stretches=((124, 16),))
    >>> mel = torch.randn(80, 200)
    >>> masked = apply_spec_masks(mel, masks, frames=200)
    >>> bool((masked[53:59] == mel.mean()).all()), bool((masked[:53, :124] == mel[:53, :124]).all())
    (True, True)
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the corpus workers that augment audio need no torch
    import torch

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AugmentationOdds:
    """How often each effect is drawn, and its range (the corpus config holds the values)."""

    clean: float = 0.4
    gain_db: tuple[float, float] = (-9.0, 3.0)
    noise: float = 0.35
    noise_snr_db: tuple[float, float] = (8.0, 30.0)
    reverb: float = 0.3
    reverb_room: tuple[float, float] = (0.1, 0.7)
    telephone: float = 0.15


@dataclass(frozen=True)
class Augmentation:
    """What is done to one utterance; the defaults do nothing."""

    gain_db: float = 0.0
    noise_snr_db: float | None = None
    reverb_room: float | None = None
    telephone: bool = False
    seed: int = 0

    def to_dict(self) -> dict:
        """The manifest's ``augment`` field (``seed`` lives in the row's key)."""
        data = asdict(self)
        data.pop("seed")
        return data

    @property
    def is_clean(self) -> bool:
        return self.noise_snr_db is None and self.reverb_room is None and not self.telephone and self.gain_db == 0.0

    def label(self) -> str:
        """A short name for tables: ``clean``, ``gain`` (a level change alone), or the effects joined by ``+``."""
        parts = [name for name, on in (("noise", self.noise_snr_db is not None), ("reverb", self.reverb_room is not None),
                                       ("telephone", self.telephone)) if on]
        return "+".join(parts) or ("clean" if self.gain_db == 0.0 else "gain")


def draw_augmentation(rng: random.Random, odds: AugmentationOdds = AugmentationOdds()) -> Augmentation:
    """One utterance's augmentation; a ``clean`` draw (probability ``odds.clean``) leaves the audio as it is."""
    seed = rng.getrandbits(31)
    if rng.random() < odds.clean:
        return Augmentation(seed=seed)
    return Augmentation(
        gain_db=round(rng.uniform(*odds.gain_db), 2),
        noise_snr_db=round(rng.uniform(*odds.noise_snr_db), 1) if rng.random() < odds.noise else None,
        reverb_room=round(rng.uniform(*odds.reverb_room), 2) if rng.random() < odds.reverb else None,
        telephone=rng.random() < odds.telephone,
        seed=seed,
    )


def apply_augmentation(audio: np.ndarray, aug: Augmentation, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` (float32 mono) with ``aug`` applied: same length, float32, clipped to [-1, 1]."""
    if aug.is_clean:
        return audio
    import pedalboard

    out = np.asarray(audio, dtype=np.float32)
    effects = []
    if aug.reverb_room is not None:
        effects.append(pedalboard.Reverb(room_size=aug.reverb_room, damping=0.5, wet_level=0.3, dry_level=0.8))
    if aug.telephone:
        effects += [pedalboard.HighpassFilter(300.0), pedalboard.LowpassFilter(3400.0),
                    pedalboard.GSMFullRateCompressor()]
    if effects:
        out = pedalboard.Pedalboard(effects)(out, sample_rate)[: len(audio)]
        out = np.pad(out, (0, len(audio) - len(out)))
    if aug.noise_snr_db is not None:
        from audiomentations import AddColorNoise

        # audiomentations draws from the global numpy and `random` generators: seed both for this
        # utterance alone, then put them back.
        states = np.random.get_state(), random.getstate()
        np.random.seed(aug.seed)
        random.seed(aug.seed)
        try:
            noise = AddColorNoise(min_snr_db=aug.noise_snr_db, max_snr_db=aug.noise_snr_db, p=1.0)
            out = noise(out, sample_rate=sample_rate)
        finally:
            np.random.set_state(states[0])
            random.setstate(states[1])
    out = out * np.float32(10.0 ** (aug.gain_db / 20.0))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class SpeakerShiftOdds:
    """How often a clip gets another speaker's voice, and how far from its own (factors, 1.0 = unchanged); the
    train config (``train.speaker_*``) holds the values."""

    share: float
    formant_ratio: tuple[float, float]
    pitch_factor: tuple[float, float]


@dataclass(frozen=True)
class SpeakerShift:
    """Formants and pitch median scaled by these factors (``formant_ratio`` > 1: a shorter vocal tract); ``seed``
    fixes Praat's random choices (its unvoiced stretches), so the same shift gives the same samples."""

    formant_ratio: float = 1.0
    pitch_factor: float = 1.0
    seed: int = 0


def draw_speaker_shift(rng: random.Random, odds: SpeakerShiftOdds) -> SpeakerShift | None:
    """One clip's speaker shift, or ``None`` (probability ``1 - odds.share``) to keep its own voice."""
    if rng.random() >= odds.share:
        return None
    return SpeakerShift(formant_ratio=round(rng.uniform(*odds.formant_ratio), 3),
                        pitch_factor=round(rng.uniform(*odds.pitch_factor), 3), seed=rng.getrandbits(31))


# Praat's pitch range for speech (Hz); outside it a frame counts as unvoiced.
_PITCH_FLOOR, _PITCH_CEILING = 75.0, 600.0


def _median_f0(sound) -> float:
    from parselmouth.praat import call

    return call(sound.to_pitch(pitch_floor=_PITCH_FLOOR, pitch_ceiling=_PITCH_CEILING), "Get quantile", 0, 0, 0.5,
                "Hertz")


def median_f0(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """The median pitch of ``audio``'s voiced frames in Hz (Praat, 75-600 Hz), NaN when none is voiced.

    >>> t = np.arange(16000) / 16000
    >>> round(median_f0(0.5 * np.sin(2 * np.pi * 150 * t)))
    150
    """
    import parselmouth

    return float(_median_f0(parselmouth.Sound(np.asarray(audio, dtype=np.float64), sampling_frequency=sample_rate)))


def apply_speaker_shift(audio: np.ndarray, shift: SpeakerShift, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` as another speaker would say it (Praat's PSOLA *Change gender*): same length, same peak level,
    float32. A clip Praat finds no voiced frame in (silence, noise) comes back unchanged."""
    import parselmouth
    from parselmouth.praat import call, run

    samples = np.asarray(audio, dtype=np.float64)
    sound = parselmouth.Sound(samples, sampling_frequency=sample_rate)
    median = _median_f0(sound)
    if not np.isfinite(median):
        return np.asarray(audio, dtype=np.float32)
    # The new median stays inside the analysis range: Praat's PSOLA marks no pulses outside it.
    new_median = float(np.clip(median * shift.pitch_factor, _PITCH_FLOOR + 5.0, _PITCH_CEILING - 5.0))
    run(f"random_initializeWithSeedUnsafelyButPredictably ({shift.seed})")  # Praat's one, process-wide generator
    try:
        shifted = call(sound, "Change gender", _PITCH_FLOOR, _PITCH_CEILING, shift.formant_ratio, new_median, 1.0, 1.0)
    finally:
        run("random_initializeSafelyAndUnpredictably ()")
    out = shifted.values[0][: len(samples)]
    return _at_peak_of(np.pad(out, (0, len(samples) - len(out))), samples)


def _at_peak_of(out: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """``out`` scaled to the peak level of ``samples`` (what it was made from), in [-1, 1], float32."""
    peak, new_peak = np.abs(samples).max(), np.abs(out).max()
    if new_peak > 0:
        out = out * (peak / new_peak)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class EqualizerOdds:
    """How often a clip's spectrum is recoloured, and the largest boost or cut of a band in dB (``train.equalizer*``
    holds the values)."""

    share: float
    max_gain_db: float


# Octave-spaced centres over the band Whisper's log-mel weighs; at Q 1 neighbouring bands overlap, so the gains
# make one smooth spectral envelope rather than notches.
EQUALIZER_BANDS_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
_EQUALIZER_Q = 1.0


@dataclass(frozen=True)
class Equalizer:
    """The gain in dB of each band of ``EQUALIZER_BANDS_HZ`` (0 = unchanged)."""

    gains_db: tuple[float, ...]


def draw_equalizer(rng: random.Random, odds: EqualizerOdds) -> Equalizer | None:
    """One clip's equalizer, or ``None`` (probability ``1 - odds.share``) to keep its own colour."""
    if rng.random() >= odds.share:
        return None
    return Equalizer(tuple(round(rng.uniform(-odds.max_gain_db, odds.max_gain_db), 2) for _ in EQUALIZER_BANDS_HZ))


def apply_equalizer(audio: np.ndarray, equalizer: Equalizer, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` through ``equalizer``'s peak filters (``pedalboard``): same length, same peak level, float32."""
    import pedalboard

    if len(equalizer.gains_db) != len(EQUALIZER_BANDS_HZ):
        raise ValueError(f"an equalizer has {len(EQUALIZER_BANDS_HZ)} gains, got {len(equalizer.gains_db)}")
    board = pedalboard.Pedalboard([pedalboard.PeakFilter(cutoff_frequency_hz=hz, gain_db=gain, q=_EQUALIZER_Q)
                                   for hz, gain in zip(EQUALIZER_BANDS_HZ, equalizer.gains_db)])
    samples = np.asarray(audio, dtype=np.float32)
    return _at_peak_of(board(samples[None, :], sample_rate)[0], samples)


@dataclass(frozen=True)
class SpecMaskOdds:
    """How many bands and stretches a clip gets and how wide they may be (``train.spec_*`` holds the values)."""

    bands: int = 0
    band_width: int = 15  # mel channels, at most
    stretches: int = 0
    stretch_share: float = 0.05  # of the clip's frames, at most


@dataclass(frozen=True)
class SpecMasks:
    """``(first channel, channels)`` bands and ``(first frame, frames)`` stretches of one clip's mel."""

    bands: tuple[tuple[int, int], ...] = ()
    stretches: tuple[tuple[int, int], ...] = ()


def draw_spec_masks(rng: random.Random, odds: SpecMaskOdds, n_mels: int, frames: int) -> SpecMasks:
    """One clip's masks: widths uniform in ``[0, max]`` as in SpecAugment, positions uniform where they fit."""

    def draw(count: int, widest: int, size: int) -> tuple[tuple[int, int], ...]:
        spans = []
        for _ in range(count):
            width = rng.randint(0, max(0, min(widest, size)))
            spans.append((rng.randint(0, size - width), width))
        return tuple(spans)

    return SpecMasks(bands=draw(odds.bands, odds.band_width, n_mels),
                     stretches=draw(odds.stretches, int(odds.stretch_share * frames), frames))


def apply_spec_masks(mel: torch.Tensor, masks: SpecMasks, frames: int) -> torch.Tensor:
    """``mel (n_mels, T)`` with the bands and stretches set to the mean of its first ``frames`` frames (the clip;
    the batch's padding after them is left alone). Returns a new tensor."""
    out = mel.clone()
    fill = mel[:, :frames].mean()
    for start, width in masks.bands:
        out[start : start + width, :frames] = fill
    for start, width in masks.stretches:
        out[:, start : start + width] = fill
    return out
