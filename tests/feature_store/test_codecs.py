import numpy as np
import pytest
import torch
from feature_store_helpers import activations

from feature_store.codecs import (
    CODECS,
    bytes_per_frame_per_width,
    cosine_fidelity,
    decode,
    encode,
)

# Whisper-large-v3-like shape: (layers, frames, width).
LAYERS, FRAMES, WIDTH = 4, 200, 1280
MIN_COSINE = {"fp16": 0.99999, "bf16": 0.9999, "int8": 0.999}


@pytest.fixture(scope="module")
def realistic():
    return activations(np.random.default_rng(0), LAYERS, FRAMES, WIDTH, outliers=4)


def round_trip(x, codec):
    enc = encode(x, codec)
    return decode(enc.values, enc.scale, codec, enc.channel_scale)


def plain_absmax_int8(x):
    """Per-frame absmax int8 without the channel scale, for comparison."""
    scale = np.abs(x).max(-1, keepdims=True) / 127
    scale[scale == 0] = 1
    return np.clip(np.rint(x / scale), -127, 127) * scale


def test_fp16_round_trip_is_exact_fp16_rounding(realistic):
    np.testing.assert_array_equal(
        round_trip(realistic, "fp16"), realistic.astype(np.float16).astype(np.float32)
    )


def test_fp16_saturates_instead_of_overflowing_to_inf():
    y = round_trip(np.array([[[1e6, -1e6, 1.0]]], dtype=np.float32), "fp16")
    assert np.isfinite(y).all() and y[0, 0, 0] == 65504.0


def test_bf16_round_trip_matches_torch_bfloat16(realistic):
    expected = torch.from_numpy(realistic).to(torch.bfloat16).float().numpy()
    enc = encode(realistic, "bf16")
    assert enc.values.dtype == np.uint16
    np.testing.assert_array_equal(decode(enc.values, None, "bf16"), expected)


def test_bf16_keeps_nan_and_inf():
    y = round_trip(np.array([[[np.nan, np.inf, -np.inf, 3.0e38]]], dtype=np.float32), "bf16")
    assert np.isnan(y[0, 0, 0]) and y[0, 0, 1] == np.inf and y[0, 0, 2] == -np.inf
    assert np.isfinite(y[0, 0, 3])


def test_int8_layout_zero_rows_and_error_bound():
    x = np.zeros((2, 3, 8), dtype=np.float32)
    x[1, 2] = np.linspace(-1, 1, 8)
    x[1, 0] = np.linspace(2, -5, 8)
    enc = encode(x, "int8")
    assert enc.values.dtype == np.int8 and enc.values.shape == x.shape
    assert enc.scale.dtype == np.float32 and enc.scale.shape == (2, 3)
    assert enc.channel_scale.dtype == np.float16 and enc.channel_scale.shape == (2, 8)
    y = decode(enc.values, enc.scale, "int8", enc.channel_scale)
    assert np.all(y[0] == 0) and np.all(y[1, 1] == 0)
    # Rounding error is at most half a quantisation step of that frame and channel.
    step = enc.scale[..., None] * enc.channel_scale.astype(np.float32)[:, None, :]
    assert np.all(np.abs(y - x) <= step / 2 + 1e-6)
    # Symmetric: each frame's absmax maps to exactly +-127.
    assert np.abs(enc.values[1, 0]).max() == 127 and np.abs(enc.values[1, 2]).max() == 127
    with pytest.raises(ValueError):
        decode(enc.values, enc.scale, "int8")  # channel scale missing


@pytest.mark.parametrize("codec", CODECS)
def test_cosine_fidelity_per_codec(codec, realistic):
    cosine = cosine_fidelity(realistic, round_trip(realistic, codec))
    assert cosine.shape == (LAYERS,)
    print(f"{codec}: mean cosine per layer {np.round(cosine, 7).tolist()}")
    assert cosine.min() >= MIN_COSINE[codec]


def test_channel_scale_rescues_int8_from_outlier_channels(realistic):
    # Plain per-frame absmax spends its 8 bits on the outlier channels; the per-sample channel
    # scale is what lifts int8 above 0.999 on such activations.
    plain = cosine_fidelity(realistic, plain_absmax_int8(realistic)).min()
    ours = cosine_fidelity(realistic, round_trip(realistic, "int8")).min()
    print(f"int8 cosine: plain per-frame absmax {plain:.6f}, with channel scale {ours:.6f}")
    assert plain < 0.999 < 0.9999 < ours


def test_bytes_per_frame_per_width():
    assert bytes_per_frame_per_width("fp16", 1280) == 2
    assert bytes_per_frame_per_width("bf16", 1280) == 2
    assert bytes_per_frame_per_width("int8", 1280) == pytest.approx(1 + 4 / 1280)
    assert bytes_per_frame_per_width("int8", 1280, 500) == pytest.approx(1 + 4 / 1280 + 2 / 500)
    with pytest.raises(ValueError):
        bytes_per_frame_per_width("fp8", 1280)


def test_cosine_fidelity_edge_cases():
    x = np.ones((1, 2, 4), dtype=np.float32)
    x[0, 1] = 0
    y = x.copy()
    np.testing.assert_allclose(cosine_fidelity(x, y), [1.0])  # zero vs zero counts as equal
    y[0, 0] = 0
    np.testing.assert_allclose(cosine_fidelity(x, y), [0.5])  # nonzero vs zero is cosine 0
    with pytest.raises(ValueError):
        cosine_fidelity(x, y[:, :1])
