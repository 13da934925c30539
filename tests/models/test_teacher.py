"""The Whisper teacher wrapper: trimmed frames, pooling, the 30 s limit, stored layer order.

Fast tests use the random tiny Whisper (4 layers, width 64); the slow test checks the real bundled
Whisper tiny.en against Hugging Face's own encoder on WhisperFeatureExtractor features.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.data.mel import WHISPER_WINDOW_SAMPLES, log_mel, teacher_frames
from pipeline.models.teacher import TeacherInputError, WhisperTeacher

RANDOM_TEACHER = "random:whisper-tiny"
BUNDLED_TEACHER = "bundled:whisper-tiny.en"


def noisy_tone(num_samples: int, seed: int = 0) -> np.ndarray:
    """A voiced-ish test signal of ``num_samples`` at 16 kHz (content does not matter here)."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) + 0.02 * rng.standard_normal(num_samples)).astype(np.float32)


@pytest.fixture(scope="session")
def all_layers_teacher(model_cache_dir) -> WhisperTeacher:
    """The random tiny Whisper returning every hidden state (0 = embeddings .. 4), unpooled."""
    torch.manual_seed(0)
    return WhisperTeacher.from_spec(RANDOM_TEACHER, model_cache_dir, layers=None)


def test_all_layers_by_default_and_out_of_range_layers_refused(all_layers_teacher):
    teacher = all_layers_teacher
    assert teacher.layers == list(range(1, teacher.num_layers + 1))  # layers=None -> every encoder layer
    with pytest.raises(ValueError, match="out of range"):
        WhisperTeacher(teacher.encoder, teacher.mel, layers=[1, teacher.num_layers + 1])


def test_frames_trimmed_to_real_audio(all_layers_teacher):
    teacher = all_layers_teacher
    lengths = [16000, 12345, 321, WHISPER_WINDOW_SAMPLES]  # 50, 39, 2 and 1500 frames
    outputs = teacher.encode([noisy_tone(n, seed=i) for i, n in enumerate(lengths)])
    for n, states in zip(lengths, outputs):
        assert states.dtype == np.float32
        assert states.shape == (teacher.num_layers, teacher_frames(n), teacher.width)
        assert states.shape[1] == teacher.frames(n)
    assert [o.shape[1] for o in outputs] == [50, 39, 2, 1500]


def test_trimmed_states_are_the_first_frames_of_the_padded_encoding(all_layers_teacher):
    teacher = all_layers_teacher
    audio = noisy_tone(20000)
    padded = torch.zeros(1, WHISPER_WINDOW_SAMPLES)
    padded[0, : len(audio)] = torch.from_numpy(audio)
    with torch.inference_mode():
        full = teacher.encoder(input_features=log_mel(padded, teacher.mel), output_hidden_states=True)
    states = teacher.encode([audio])[0]
    keep = teacher_frames(len(audio))
    for i, layer in enumerate(teacher.layers):
        np.testing.assert_allclose(states[i], full.hidden_states[layer][0, :keep].numpy(), rtol=1e-5, atol=1e-5)


def test_batch_composition_does_not_change_an_utterance(all_layers_teacher):
    """The precompute worker batches by length; every input is padded to 30 s, so batches are independent."""
    teacher = all_layers_teacher
    short, long = noisy_tone(8000, seed=1), noisy_tone(40000, seed=2)
    alone = teacher.encode([short])[0]
    batched = teacher.encode([long, short])[1]
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("num_samples, pooling", [(16000, 3), (12345, 2), (16000, 5)])
def test_pooling_averages_consecutive_frames(all_layers_teacher, num_samples, pooling):
    base = all_layers_teacher
    pooled_teacher = WhisperTeacher(base.encoder, base.mel, layers=base.layers, pooling=pooling)
    audio = noisy_tone(num_samples)
    unpooled = base.encode([audio])[0]
    pooled = pooled_teacher.encode([audio])[0]
    frames = unpooled.shape[1]
    assert pooled.shape == (base.num_layers, -(-frames // pooling), base.width)
    assert pooled.shape[1] == teacher_frames(num_samples, pooling) == pooled_teacher.frames(num_samples)
    # Window i averages frames [i*p, (i+1)*p); a short last window is averaged over what it has.
    expected = np.stack(
        [unpooled[:, start : start + pooling].mean(axis=1) for start in range(0, frames, pooling)], axis=1
    )
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-5)


def test_longer_than_30_s_raises_teacher_input_error(all_layers_teacher):
    teacher = all_layers_teacher
    with pytest.raises(TeacherInputError, match="30 s"):
        teacher.encode([noisy_tone(WHISPER_WINDOW_SAMPLES + 1)])
    # One bad utterance fails its whole batch (the precompute worker then retries one by one).
    with pytest.raises(TeacherInputError):
        teacher.encode([noisy_tone(16000), noisy_tone(WHISPER_WINDOW_SAMPLES + 16000)])
    with pytest.raises(TeacherInputError, match="empty"):
        teacher.encode([np.zeros(0, dtype=np.float32)])
    # The message names the offending length, so a precompute log says which clip was too long.
    with pytest.raises(TeacherInputError, match=r"^31\.00 s is longer"):
        teacher.encode([noisy_tone(31 * 16000)])


def test_stored_layer_order_is_the_requested_order(model_cache_dir):
    requested = [4, 0, 2]
    teacher_all = WhisperTeacher.from_spec(RANDOM_TEACHER, model_cache_dir, layers=[0, 1, 2, 3, 4])
    teacher_some = WhisperTeacher(teacher_all.encoder, teacher_all.mel, layers=requested)
    audio = noisy_tone(24000)
    every = teacher_all.encode([audio])[0]
    some = teacher_some.encode([audio])[0]
    assert teacher_some.layers == requested and some.shape[0] == len(requested)
    for position, layer in enumerate(requested):
        np.testing.assert_allclose(some[position], every[layer], rtol=1e-5, atol=1e-6)
    # Distinct layers really differ, so a permuted axis could not pass by accident.
    assert not np.allclose(some[0], some[2], atol=1e-3)


@pytest.mark.slow
def test_bundled_tiny_en_matches_hf_encoder_on_feature_extractor_input(model_cache_dir):
    """Real Whisper tiny.en: every hidden state (embeddings and layers 1-4) equals HF's own encoder
    run on WhisperFeatureExtractor's 30 s-padded features, for the frames of real speech."""
    from transformers import WhisperFeatureExtractor, WhisperModel

    from pipeline.data.tts import synthesize
    from pipeline.models.sources import resolve_model_dir

    model_dir = resolve_model_dir(BUNDLED_TEACHER, model_cache_dir)
    teacher = WhisperTeacher.from_spec(BUNDLED_TEACHER, model_cache_dir, layers=[0, 1, 2, 3, 4])
    speech = [
        synthesize("The quick brown fox jumps over the lazy dog."),
        synthesize("Seven green apples.", voice="en-gb", rate=190),
    ]
    ours = teacher.encode(speech)

    hf_model = WhisperModel.from_pretrained(model_dir, dtype=torch.float32).eval()  # config says fp16
    feature_extractor = WhisperFeatureExtractor.from_pretrained(model_dir)
    features = feature_extractor(speech, sampling_rate=16000, return_tensors="pt").input_features
    assert features.shape == (2, 80, 3000)  # padded to 30 s, as Whisper requires
    with torch.inference_mode():
        hidden = hf_model.encoder(features, output_hidden_states=True).hidden_states
    assert len(hidden) == 5

    for i, audio in enumerate(speech):
        keep = teacher_frames(len(audio))
        assert ours[i].shape == (5, keep, 384)
        for layer in range(5):
            reference = hidden[layer][i, :keep].numpy()
            scale = np.abs(reference).max()
            error = np.abs(ours[i][layer] - reference).max()
            # The torch log-mel equals the numpy feature extractor up to float rounding (bitwise, on CPU).
            assert error <= 1e-5 * scale, (i, layer, error, scale)
            cosine = (ours[i][layer] * reference).sum(-1) / (
                np.linalg.norm(ours[i][layer], axis=-1) * np.linalg.norm(reference, axis=-1)
            )
            assert cosine.min() > 0.99999, (i, layer, cosine.min())


# ---------------------------------------------------------------------------------------------- trim window
@pytest.fixture(scope="session")
def trim_teacher(all_layers_teacher) -> WhisperTeacher:
    """The same random tiny Whisper (layers 0..4) in trim mode, 1 s buckets."""
    base = all_layers_teacher
    return WhisperTeacher(base.encoder, base.mel, layers=[0, 1, 2, 3, 4], window="trim", window_step_s=1.0)


def test_own_encoder_mirrors_transformers_whisper_encoder(trim_teacher):
    """_run_encoder on Whisper's own 3000 frames gives every hidden state transformers gives (index 0 the
    embeddings, the last one after the final layer norm)."""
    teacher = trim_teacher
    features = teacher.window_features([noisy_tone(20000)], WHISPER_WINDOW_SAMPLES)
    with torch.inference_mode():
        reference = teacher.encoder(input_features=features, output_hidden_states=True).hidden_states
        ours = teacher._run_encoder(features)
    assert len(ours) == len(reference) == teacher.num_layers + 1
    for layer, (a, b) in enumerate(zip(ours, reference)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=f"hidden state {layer}")


def test_trim_gives_the_shapes_of_full(all_layers_teacher, trim_teacher):
    lengths = [16000, 12345, 321, 40000, 47999]
    clips = [noisy_tone(n, seed=i) for i, n in enumerate(lengths)]
    full = WhisperTeacher(all_layers_teacher.encoder, all_layers_teacher.mel, layers=[0, 1, 2, 3, 4])
    for n, a, b in zip(lengths, full.encode(clips), trim_teacher.encode(clips)):
        assert a.shape == b.shape == (5, teacher_frames(n), trim_teacher.width)
        assert a.dtype == b.dtype == np.float32
    # embeddings (index 0) see only the conv stem: equal in both modes away from the window's edge
    np.testing.assert_allclose(trim_teacher.encode(clips[:1])[0][0, :-1], full.encode(clips[:1])[0][0, :-1],
                               rtol=1e-5, atol=1e-5)


def test_a_30_s_clip_gets_identical_states_in_both_modes(all_layers_teacher, trim_teacher):
    clip = noisy_tone(WHISPER_WINDOW_SAMPLES, seed=5)
    full = WhisperTeacher(all_layers_teacher.encoder, all_layers_teacher.mel, layers=[0, 1, 2, 3, 4])
    assert trim_teacher.window_samples(len(clip)) == WHISPER_WINDOW_SAMPLES
    np.testing.assert_array_equal(trim_teacher.encode([clip])[0], full.encode([clip])[0])
    # a 29.5 s clip rounds up to the full window too (1 s buckets, capped at 30 s)
    assert trim_teacher.window_samples(WHISPER_WINDOW_SAMPLES - 8000) == WHISPER_WINDOW_SAMPLES


def test_bucket_window_features_are_whispers_own_first_frames(trim_teacher):
    """Padding a clip to its bucket gives exactly the first frames of Whisper's 30 s-padded log-mel."""
    clip = noisy_tone(36800)  # 2.3 s, bucket 3 s
    window = trim_teacher.window_samples(len(clip))
    assert window == 48000
    ours = trim_teacher.window_features([clip], window)
    padded = torch.zeros(1, WHISPER_WINDOW_SAMPLES)
    padded[0, : len(clip)] = torch.from_numpy(clip)
    whisper = log_mel(padded, trim_teacher.mel)
    assert ours.shape == (1, trim_teacher.mel.n_mels, 300)
    torch.testing.assert_close(ours, whisper[..., :300], rtol=0, atol=1e-6)
    # a clip that fills its window exactly (no STFT frame reaches the reflect-padded edge)
    exact = noisy_tone(48000, seed=3)
    padded[0, : len(exact)] = torch.from_numpy(exact)
    torch.testing.assert_close(trim_teacher.window_features([exact], 48000), log_mel(padded, trim_teacher.mel)[..., :300],
                               rtol=0, atol=1e-6)


def test_bucket_padding_equals_encoding_the_clip_alone_in_that_window(trim_teacher):
    teacher = trim_teacher
    short, long, other = noisy_tone(36800, seed=1), noisy_tone(47000, seed=2), noisy_tone(70000, seed=3)
    assert teacher.window_samples(len(short)) == teacher.window_samples(len(long)) == 48000
    batched = teacher.encode([long, other, short])  # two buckets: 3 s (long, short) and 5 s (other)
    with torch.inference_mode():
        alone = teacher.encode_window([short], 48000)[0, :, : teacher_frames(len(short))].numpy()
    np.testing.assert_allclose(batched[2], alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched[2], teacher.encode([short])[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batched[1], teacher.encode([other])[0], rtol=1e-5, atol=1e-5)
    # the window really matters: the same clip in a 5 s window gives other states
    with torch.inference_mode():
        wider = teacher.encode_window([short], 80000)[0, :, : teacher_frames(len(short))].numpy()
    assert not np.allclose(wider[4], alone[4], atol=1e-4)


def test_trim_layer_subset_and_pooling_match_all_layers(trim_teacher):
    base = trim_teacher
    some = WhisperTeacher(base.encoder, base.mel, layers=[2, 0], window="trim", window_step_s=1.0)
    pooled = WhisperTeacher(base.encoder, base.mel, layers=[0, 1, 2, 3, 4], pooling=2, window="trim",
                            window_step_s=1.0)
    clip = noisy_tone(20000)
    every = base.encode([clip])[0]
    np.testing.assert_allclose(some.encode([clip])[0], every[[2, 0]], rtol=1e-5, atol=1e-6)
    assert pooled.encode([clip])[0].shape == (5, teacher_frames(len(clip), 2), base.width)


def test_window_settings_are_checked(all_layers_teacher):
    base = all_layers_teacher
    with pytest.raises(ValueError, match="multiple of 0.02"):
        WhisperTeacher(base.encoder, base.mel, window="trim", window_step_s=0.25)
    with pytest.raises(ValueError, match="window"):
        WhisperTeacher(base.encoder, base.mel, window="half")
    minimum = WhisperTeacher(base.encoder, base.mel, window="trim", window_step_s=0.5, min_window_s=5.0)
    assert minimum.window_samples(16000) == 80000 and minimum.window_samples(90000) == 96000
