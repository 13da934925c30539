"""eSpeak NG synthesis: format, plausibility, voice/pitch control, determinism, errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import tts
from pipeline.data.tts import (
    SAMPLE_RATE,
    EspeakUnavailableError,
    UnknownVoiceError,
    english_accents,
    list_voices,
    synthesize,
)

SENTENCE = "The quick brown fox jumps over the lazy dog near the river."
REPO_ROOT = Path(__file__).resolve().parents[2]


def median_f0(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Median autocorrelation pitch (Hz) over loud 40 ms frames."""
    estimates = []
    for start in range(0, len(samples) - 640, 320):
        frame = samples[start:start + 640].astype(np.float64)
        if np.sqrt(np.mean(frame**2)) < 0.05:
            continue
        frame -= frame.mean()
        autocorr = np.correlate(frame, frame, "full")[639:]
        shortest, longest = rate // 400, rate // 60
        estimates.append(rate / (shortest + np.argmax(autocorr[shortest:longest])))
    return float(np.median(estimates))


def test_synthesize_returns_16k_mono_float32_speech():
    audio = synthesize(SENTENCE, voice="en-us", rate=160, pitch=50)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.abs(audio).max() <= 1.0
    assert np.sqrt(np.mean(audio**2)) > 0.02  # not silent
    # 11 words at 160 wpm is ~4.1 s of speech; allow for pauses and espeak's own timing
    expected = len(SENTENCE.split()) / 160 * 60
    assert 0.6 * expected < len(audio) / SAMPLE_RATE < 1.6 * expected
    # 16 kHz output: nothing meaningful above 8 kHz can exist, but speech energy sits below 4 kHz
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    assert spectrum[freqs < 4000].sum() > 0.9 * spectrum.sum()


def test_rate_changes_duration():
    slow = synthesize(SENTENCE, rate=130)
    fast = synthesize(SENTENCE, rate=200)
    assert len(slow) / len(fast) > 1.3


def test_voice_and_pitch_change_the_audio():
    base = synthesize("Hello there, how are you doing today?", voice="en-us", pitch=50)
    female = synthesize("Hello there, how are you doing today?", voice="en-us+f3", pitch=50)
    low = synthesize("Hello there, how are you doing today?", voice="en-us", pitch=30)
    high = synthesize("Hello there, how are you doing today?", voice="en-us", pitch=70)
    assert median_f0(female) > 1.5 * median_f0(base)
    assert median_f0(high) > 1.2 * median_f0(low)
    british = synthesize("Hello there, how are you doing today?", voice="en-gb-x-rp", pitch=50)
    assert len(british) != len(base) or not np.array_equal(british, base)


def test_same_arguments_give_identical_samples_whatever_ran_before():
    # f3 is a breathy variant (random noise), m3 is not; both must repeat exactly.
    first = [synthesize("Is it raining in Paris?", voice=v, rate=150, pitch=40)
             for v in ("en-us+f3", "en+m3")]
    synthesize(SENTENCE, voice="en-gb-x-rp+f5", rate=190, pitch=65)  # disturb any leftover state
    second = [synthesize("Is it raining in Paris?", voice=v, rate=150, pitch=40)
              for v in ("en-us+f3", "en+m3")]
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_same_arguments_give_identical_samples_in_a_fresh_process():
    here = hashlib.sha256(synthesize("Is it raining in Paris?", voice="en-us+f3").tobytes())
    code = ("import hashlib; from pipeline.data.tts import synthesize; "
            "print(hashlib.sha256(synthesize('Is it raining in Paris?', voice='en-us+f3')"
            ".tobytes()).hexdigest())")
    there = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert there == here.hexdigest()


def test_stays_deterministic_when_something_else_holds_the_library_open():
    # Another component (a phonemizer, say) keeping libespeak-ng loaded must not let state leak
    # between our calls: synthesize() then loads a private copy that it can unload.
    code = """
import ctypes, espeakng_loader, numpy as np
from pipeline.data import tts
held = ctypes.CDLL(espeakng_loader.get_library_path())
first = tts.synthesize('Is it raining in Paris?', voice='en-us+f3')
tts.synthesize('Something else entirely.', voice='en+m3', rate=200)
again = tts.synthesize('Is it raining in Paris?', voice='en-us+f3')
print(tts._library_path() != espeakng_loader.get_library_path(), np.array_equal(first, again))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.split() == ["True", "True"]


def test_stays_deterministic_when_something_opens_the_library_after_our_first_call():
    # What Kokoro's G2P does: phonemizer opens the wheel's libespeak-ng and keeps it, after we chose
    # which file to load. Our copy must still unload (and reset) between calls.
    code = """
import ctypes, espeakng_loader, numpy as np
from pipeline.data import tts
first = tts.synthesize('Is it raining in Paris?', voice='en-us+f3')
held = ctypes.CDLL(espeakng_loader.get_library_path())
again = tts.synthesize('Is it raining in Paris?', voice='en-us+f3')
third = tts.synthesize('Is it raining in Paris?', voice='en-us+f3')
print(np.array_equal(first, again), np.array_equal(again, third))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.split() == ["True", "True"]


def test_concurrent_threads_are_serialised_and_correct():
    texts = [f"Thread number {word} is speaking now." for word in ("one", "two", "three", "four")]
    expected = [synthesize(t, voice="en-us+f2") for t in texts]
    results: dict[int, np.ndarray] = {}

    def speak(i: int) -> None:
        results[i] = synthesize(texts[i], voice="en-us+f2")

    threads = [threading.Thread(target=speak, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, audio in enumerate(expected):
        assert np.array_equal(results[i], audio)


def test_list_voices_offers_accents_and_variants_that_all_speak():
    voices = list_voices()
    accents = english_accents()
    assert {"en", "en-us", "en-gb-x-rp", "en-gb-scotland"} <= set(accents)
    assert "en-shaw" not in accents
    assert {"en-us", "en-us+f3", "en-gb-x-rp+m3", "en+m7", "en-us+f4"} <= set(voices)
    assert len(voices) == len(accents) * (1 + len(tts.STANDARD_VARIANTS))
    assert list_voices(variants=()) == accents
    assert "klatt" in tts.voice_variants()
    for voice in voices:
        audio = synthesize("yes", voice=voice)
        assert np.abs(audio).max() > 0.05, voice


def test_language_code_selects_the_voice_that_speaks_it():
    # "en-gb" is a language code, not a voice file; espeak itself would reject it
    assert np.array_equal(synthesize("hello", voice="en-gb+m2"), synthesize("hello", voice="en+m2"))


@pytest.mark.parametrize("voice, message", [
    ("en-us+nosuchvariant", "unknown eSpeak NG variant"),
    ("en-uss", "did you mean"),
    ("xx-nowhere", "unknown eSpeak NG voice"),
])
def test_unknown_voice_is_a_clear_error(voice, message):
    with pytest.raises(UnknownVoiceError, match=message):
        synthesize("hello", voice=voice)


@pytest.mark.parametrize("kwargs", [{"text": "   "}, {"rate": 10}, {"rate": 900}, {"pitch": -1},
                                    {"pitch": 101}])
def test_bad_arguments_are_rejected(kwargs):
    arguments = {"text": "hello", **kwargs}
    with pytest.raises(ValueError):
        synthesize(**arguments)


def test_missing_library_is_a_clear_error(monkeypatch):
    for cached in (tts._wheel_paths, tts._library_path, tts._catalogue):
        cached.cache_clear()
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import now raises ImportError
    try:
        with pytest.raises(EspeakUnavailableError, match="pip install espeakng-loader"):
            synthesize("hello")
    finally:
        monkeypatch.undo()
        for cached in (tts._wheel_paths, tts._library_path, tts._catalogue):
            cached.cache_clear()
    assert len(synthesize("hello")) > 0


def test_resampling_keeps_a_tone_and_removes_what_16k_cannot_hold():
    t = np.arange(22050) / 22050
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    alias = 0.5 * np.sin(2 * np.pi * 9500 * t)  # above 16 kHz's Nyquist: must be filtered out
    out = tts.resample_to_16k((tone + alias).astype(np.float32))
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out[1000:-1000]))
    freqs = np.fft.rfftfreq(len(out) - 2000, 1 / 16000)
    peak = freqs[np.argmax(spectrum)]
    assert abs(peak - 1000) < 5
    assert spectrum[np.abs(freqs - 6500) < 50].max() < 0.01 * spectrum.max()  # no 9.5k alias
