import pytest
from feature_store_helpers import make_fingerprint

from feature_store import FingerprintMismatch, MelSettings, compare
from feature_store.fingerprint import FORMAT_VERSION, check, differences


def test_equal_fingerprints_have_no_differences():
    assert compare(make_fingerprint(), make_fingerprint()) == []


def test_compare_lists_each_differing_field_including_nested_mel():
    expected = make_fingerprint()
    found = make_fingerprint(
        layers=[0, 2],
        codec="int8",
        mel=MelSettings(n_mels=128, sampling_rate=16000, hop_length=160, n_fft=400),
    )
    assert compare(expected, found) == ["layers", "codec", "mel.n_mels"]


def test_mismatch_message_names_field_and_both_values():
    expected, found = make_fingerprint(), make_fingerprint(pooling=2, teacher_weights="f" * 64)
    with pytest.raises(FingerprintMismatch) as info:
        check(expected, found, where="/x/store.zarr")
    message = str(info.value)
    assert info.value.fields == ["teacher_weights", "pooling"]
    assert "pooling: expected 1, found 2" in message
    assert "teacher_weights: expected '000" in message and "found 'fff" in message
    assert "/x/store.zarr" in message


def test_compare_accepts_stored_dicts_with_unknown_fields():
    # A store written by a newer format may carry fields this code does not know.
    stored = {**make_fingerprint().to_json_dict(), "format_version": FORMAT_VERSION + 1, "new": 1}
    assert compare(make_fingerprint(), stored) == ["format_version", "new"]
    assert differences(make_fingerprint(), stored)[1] == ("new", "<absent>", 1)


@pytest.mark.parametrize(
    "overrides",
    [{"layers": []}, {"layers": [1, 1]}, {"layers": [-1]}, {"pooling": 0}, {"codec": "fp8"},
     {"frame_rate_hz": 0.0}],
)
def test_invalid_fingerprints_are_rejected(overrides):
    with pytest.raises(ValueError):
        make_fingerprint(**overrides)


def test_fingerprint_round_trips_through_json():
    fp = make_fingerprint(codec="bf16", pooling=2, frame_rate_hz=25.0)
    assert type(fp).model_validate(fp.to_json_dict()) == fp
    assert fp.num_layers == 3
