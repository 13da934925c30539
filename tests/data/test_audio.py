import numpy as np
import pytest
import soundfile as sf

from pipeline.config import IngestConfig
from pipeline.data.audio import AudioRejected, from_flac_bytes, load_checked, quantize_pcm16, to_flac_bytes
from pipeline.data.audio import speechlike

CFG = IngestConfig()


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_any_rate_becomes_16k_with_the_right_duration(tmp_path, rate):
    path = tmp_path / "a.wav"
    sf.write(path, speechlike(1.5, rate), rate)
    audio = load_checked(path, CFG)
    assert audio.sample_rate == 16000 and audio.source_sample_rate == rate
    assert abs(audio.duration_s - 1.5) < 1e-3


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "FLOAT"])
def test_sample_formats_decode(tmp_path, subtype):
    path = tmp_path / "a.wav"
    sf.write(path, speechlike(0.5), 16000, subtype=subtype)
    assert load_checked(path, CFG).source_subtype == subtype


def test_stereo_is_averaged_and_too_many_channels_refused(tmp_path):
    mono = speechlike(0.5)
    sf.write(tmp_path / "st.wav", np.stack([mono, mono], 1), 16000, subtype="FLOAT")
    audio = load_checked(tmp_path / "st.wav", CFG)
    assert audio.source_channels == 2
    np.testing.assert_allclose(audio.samples, mono, atol=1e-6)
    sf.write(tmp_path / "six.wav", np.stack([mono] * 6, 1), 16000)
    with pytest.raises(AudioRejected, match="6 channels"):
        load_checked(tmp_path / "six.wav", CFG)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "not readable as audio"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 16000), "header only"),
        (lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), "silent"),
        (lambda p: sf.write(p, speechlike(31.0), 16000), "too long"),
        (lambda p: sf.write(p, speechlike(0.05), 16000), "too short"),
        (lambda p: sf.write(p, np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT"), "NaN or Inf"),
    ],
)
def test_bad_audio_is_rejected_with_a_reason(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioRejected, match=reason):
        load_checked(path, CFG)


def test_flac_round_trip_is_pcm16_exact():
    x = speechlike(0.7)
    decoded, rate = from_flac_bytes(to_flac_bytes(x, 16000))
    assert rate == 16000
    np.testing.assert_array_equal(decoded, quantize_pcm16(x))
