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


def test_a_store_written_in_one_window_mode_refuses_the_other(tmp_path):
    import json

    from feature_store import FeatureStore

    path = tmp_path / "trim.zarr"
    trim = make_fingerprint(window="trim", window_step_s=1.0, min_window_s=0.0)
    FeatureStore.open(path, trim, mode="a")
    full = make_fingerprint()
    assert full.window == "full"
    with pytest.raises(FingerprintMismatch) as refused:
        FeatureStore.open(path, full)
    assert refused.value.fields[0] == "window"
    assert "window: expected 'full', found 'trim'" in str(refused.value)
    with pytest.raises(FingerprintMismatch, match="window_step_s"):
        FeatureStore.open(path, trim.model_copy(update={"window_step_s": 0.5}))
    assert FeatureStore.open(path, trim).fingerprint == trim

    # a store written before the window field existed was written with the full window
    legacy = tmp_path / "legacy.zarr"
    FeatureStore.open(legacy, full, mode="a")
    meta_path = legacy / "zarr.json"
    meta = json.loads(meta_path.read_text())
    for name in ("window", "window_step_s", "min_window_s"):
        del meta["attributes"]["aura_feature_store"]["fingerprint"][name]
    meta_path.write_text(json.dumps(meta))
    assert FeatureStore.open(legacy, full).fingerprint == full
    with pytest.raises(FingerprintMismatch, match="window"):
        FeatureStore.open(legacy, trim)


def test_trim_settings_need_the_trim_window():
    with pytest.raises(ValueError, match="window='trim' only"):
        make_fingerprint(window_step_s=1.0)
