"""Augmentation: drawn per utterance from a seed, applied deterministically, each effect does what it says."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.data.augment import (
    Augmentation,
    AugmentationOdds,
    EQUALIZER_BANDS_HZ,
    Equalizer,
    EqualizerOdds,
    SpeakerShift,
    SpeakerShiftOdds,
    SpecMaskOdds,
    SpecMasks,
    apply_augmentation,
    apply_equalizer,
    apply_speaker_shift,
    apply_spec_masks,
    draw_augmentation,
    draw_equalizer,
    draw_speaker_shift,
    draw_spec_masks,
)
from pipeline.data.engines import get_engine


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return get_engine("pico").synthesize("A quiet morning on the river, with boats and birds.", "en-US")


def test_clean_is_identity(speech):
    assert apply_augmentation(speech, Augmentation()) is speech


def test_same_augmentation_same_output(speech):
    aug = Augmentation(gain_db=-3.0, noise_snr_db=15.0, reverb_room=0.4, telephone=True, seed=7)
    out = apply_augmentation(speech, aug)
    np.testing.assert_array_equal(out, apply_augmentation(speech, aug))
    assert out.shape == speech.shape and out.dtype == np.float32
    assert not np.array_equal(out, apply_augmentation(speech, Augmentation(**{**aug.__dict__, "seed": 8})))


def test_noise_at_the_requested_snr(speech):
    out = apply_augmentation(speech, Augmentation(noise_snr_db=10.0, seed=1))
    noise = out - speech
    snr = 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2))
    assert 8.5 < snr < 11.5


def test_gain_scales_amplitude(speech):
    out = apply_augmentation(speech, Augmentation(gain_db=-6.0))
    np.testing.assert_allclose(out, speech * 10 ** (-6 / 20), rtol=1e-5, atol=1e-7)


def _band_energy(audio: np.ndarray, low: float, high: float, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum() / spectrum.sum())


def test_telephone_band_removes_high_frequencies(speech):
    out = apply_augmentation(speech, Augmentation(telephone=True))
    assert _band_energy(speech, 4500, 8000) > 1e-4   # Pico itself puts little energy up there
    assert _band_energy(out, 4500, 8000) < 0.1 * _band_energy(speech, 4500, 8000)


def test_reverb_spreads_energy_in_time(speech):
    out = apply_augmentation(speech, Augmentation(reverb_room=0.7))
    silent = np.abs(speech) < 1e-4
    assert np.abs(out[silent]).mean() > 10 * max(np.abs(speech[silent]).mean(), 1e-6)


def test_draw_follows_the_odds():
    rng = random.Random(0)
    draws = [draw_augmentation(rng, AugmentationOdds(clean=0.5, noise=1.0, reverb=0.0, telephone=0.0))
             for _ in range(400)]
    clean = sum(d.is_clean for d in draws)
    assert 160 < clean < 240
    assert all(d.noise_snr_db is not None and d.reverb_room is None for d in draws if not d.is_clean)
    assert {d.label() for d in draws} == {"clean", "noise"}
    assert Augmentation(gain_db=-3.0).label() == "gain"


def _pitch_median(audio: np.ndarray) -> float:
    import parselmouth
    from parselmouth.praat import call

    pitch = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=16000).to_pitch(pitch_floor=75, pitch_ceiling=600)
    return call(pitch, "Get quantile", 0, 0, 0.5, "Hertz")


def _spectral_centroid(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    return float((spectrum * freqs).sum() / spectrum.sum())


def test_speaker_shift_keeps_timing_and_level_and_moves_pitch_and_formants(speech):
    higher = apply_speaker_shift(speech, SpeakerShift(formant_ratio=1.15, pitch_factor=1.25))
    lower = apply_speaker_shift(speech, SpeakerShift(formant_ratio=0.88, pitch_factor=0.8))
    for out in (higher, lower):
        assert out.shape == speech.shape and out.dtype == np.float32
        assert abs(np.abs(out).max() - np.abs(speech).max()) < 1e-4
        # the words stay where they were: the loudness envelopes follow each other
        env = [np.convolve(np.abs(a), np.ones(800) / 800, mode="same")[::160] for a in (speech, out)]
        assert np.corrcoef(*env)[0, 1] > 0.8
    own = _pitch_median(speech)
    assert _pitch_median(higher) == pytest.approx(1.25 * own, rel=0.08)
    assert _pitch_median(lower) == pytest.approx(0.8 * own, rel=0.08)
    assert _spectral_centroid(lower) < _spectral_centroid(speech) < _spectral_centroid(higher)
    assert np.array_equal(higher, apply_speaker_shift(speech, SpeakerShift(formant_ratio=1.15, pitch_factor=1.25)))


def test_speaker_shift_leaves_unvoiced_audio_alone():
    noise = np.random.default_rng(0).normal(0, 0.01, 16000).astype(np.float32)
    assert np.array_equal(apply_speaker_shift(noise, SpeakerShift(1.1, 1.2)), noise)


def test_speaker_shift_draw_follows_the_odds():
    rng = random.Random(0)
    odds = SpeakerShiftOdds(share=0.3, formant_ratio=(0.9, 1.1), pitch_factor=(0.8, 1.2))
    draws = [draw_speaker_shift(rng, odds) for _ in range(500)]
    shifted = [d for d in draws if d is not None]
    assert 110 < len(shifted) < 190
    assert all(0.9 <= d.formant_ratio <= 1.1 and 0.8 <= d.pitch_factor <= 1.2 for d in shifted)
    assert draw_speaker_shift(random.Random(0), SpeakerShiftOdds(0.0, (0.9, 1.1), (0.8, 1.2))) is None


def test_spec_masks_fit_the_clip_and_follow_the_odds():
    rng = random.Random(0)
    odds = SpecMaskOdds(bands=2, band_width=20, stretches=3, stretch_share=0.1)
    draws = [draw_spec_masks(rng, odds, n_mels=80, frames=300) for _ in range(300)]
    assert all(len(d.bands) == 2 and len(d.stretches) == 3 for d in draws)
    bands = [b for d in draws for b in d.bands]
    stretches = [s for d in draws for s in d.stretches]
    assert all(0 <= w <= 20 and 0 <= start <= 80 - w for start, w in bands)
    assert all(0 <= w <= 30 and 0 <= start <= 300 - w for start, w in stretches)
    assert max(w for _, w in bands) == 20 and 8 < np.mean([w for _, w in bands]) < 12  # uniform in [0, 20]
    assert draw_spec_masks(random.Random(5), odds, 80, 300) == draw_spec_masks(random.Random(5), odds, 80, 300)
    assert draw_spec_masks(rng, SpecMaskOdds(), 80, 300) == SpecMasks()  # off by default
    assert draw_spec_masks(rng, odds, 80, frames=4).stretches[0][1] == 0  # too short to mask a share of


def test_spec_masks_fill_with_the_clip_mean_and_leave_the_rest():
    import torch

    mel = torch.randn(80, 120)
    frames = 100  # the batch's padding after frame 100 is not the clip's
    masked = apply_spec_masks(mel, SpecMasks(bands=((10, 5),), stretches=((40, 7),)), frames)
    fill = mel[:, :frames].mean()
    assert (masked[10:15, :frames] == fill).all() and (masked[:, 40:47] == fill).all()
    keep = torch.ones_like(mel, dtype=torch.bool)
    keep[10:15, :frames] = False
    keep[:, 40:47] = False
    assert torch.equal(masked[keep], mel[keep])
    assert torch.equal(apply_spec_masks(mel, SpecMasks(), frames), mel) and masked is not mel


def _band_level_db(audio: np.ndarray, hz: float) -> float:
    """Mean power within a third of an octave of ``hz``, dB."""
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    band = (freqs > hz * 2 ** (-1 / 6)) & (freqs < hz * 2 ** (1 / 6))
    return float(10 * np.log10(spectrum[band].mean()))


def test_equalizer_moves_each_band_by_its_gain_and_keeps_timing_and_level(speech):
    noise = np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32)
    gains = (0.0, 9.0, 0.0, -9.0, 0.0, 6.0)
    out = apply_equalizer(noise, Equalizer(gains))
    assert out.shape == noise.shape and out.dtype == np.float32
    assert abs(np.abs(out).max() - np.abs(noise).max()) < 1e-4  # the peak level stays
    # relative to the untouched 500-Hz band (the peak normalisation moves all bands alike), each band moved by its gain,
    # less what neighbouring filters add
    moved = {hz: _band_level_db(out, hz) - _band_level_db(noise, hz) for hz in EQUALIZER_BANDS_HZ}
    offset = moved[500.0]
    assert moved[250.0] - offset == pytest.approx(9.0, abs=2.5)
    assert moved[1000.0] - offset == pytest.approx(-9.0, abs=2.5)
    assert moved[4000.0] - offset == pytest.approx(6.0, abs=2.5)
    same = apply_equalizer(speech, Equalizer(gains))
    assert np.array_equal(same, apply_equalizer(speech, Equalizer(gains)))
    env = [np.convolve(np.abs(a), np.ones(800) / 800, mode="same")[::160] for a in (speech, same)]
    assert np.corrcoef(*env)[0, 1] > 0.8  # the words stay where they were
    with pytest.raises(ValueError, match="6 gains"):
        apply_equalizer(speech, Equalizer((1.0, 2.0)))


def test_equalizer_draw_follows_the_odds():
    rng = random.Random(0)
    draws = [draw_equalizer(rng, EqualizerOdds(share=0.3, max_gain_db=6.0)) for _ in range(500)]
    drawn = [d for d in draws if d is not None]
    assert 110 < len(drawn) < 190
    gains = np.array([d.gains_db for d in drawn])
    assert gains.shape[1] == len(EQUALIZER_BANDS_HZ) and np.abs(gains).max() <= 6.0 and gains.std() > 2.5
