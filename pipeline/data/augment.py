"""Per-utterance acoustic augmentation: gain, background noise, room reverberation, telephone band.

Each utterance's augmentation is drawn once from its own seeded RNG (:func:`draw_augmentation`), stored
in the manifest with the row, and applied by :func:`apply_augmentation` with maintained libraries:
``audiomentations`` for coloured noise at a signal-to-noise ratio, Spotify's ``pedalboard`` for the
room (Freeverb), the telephone band (300-3400 Hz filters) and the GSM full-rate codec.

Usage::

    >>> import numpy as np, random
    >>> from pipeline.data.augment import Augmentation, apply_augmentation, draw_augmentation
    >>> aug = draw_augmentation(random.Random(3))
    >>> sorted(aug.to_dict())
    ['gain_db', 'noise_snr_db', 'reverb_room', 'telephone']
    >>> audio = np.sin(np.linspace(0, 800, 16000)).astype(np.float32) * 0.3
    >>> out = apply_augmentation(audio, Augmentation(gain_db=-6.0, noise_snr_db=20.0, seed=1))
    >>> out.shape == audio.shape and out.dtype == np.float32
    True
    >>> bool(np.array_equal(out, apply_augmentation(audio, Augmentation(gain_db=-6.0, noise_snr_db=20.0, seed=1))))
    True
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np

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
