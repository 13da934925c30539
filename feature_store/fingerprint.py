"""What a feature store holds, as one comparable record.

A store caches teacher hidden states; they are only valid targets for a run that would compute
the same numbers. :class:`StoreFingerprint` lists everything that changes those numbers (teacher
and its weights, which layers, pooling, codec, mel front end, on-disk format) and lives in the
store's root attributes. Opening a store with a different fingerprint is refused with
:class:`FingerprintMismatch`, whose message names each differing field with both values::

    >>> from feature_store import StoreFingerprint, MelSettings, compare
    >>> fp = StoreFingerprint(
    ...     teacher="openai/whisper-large-v3", teacher_weights="ab12...", layers=[8, 16, 32],
    ...     pooling=2, codec="int8", width=1280, frame_rate_hz=25.0,
    ...     mel=MelSettings(n_mels=128, sampling_rate=16000, hop_length=160, n_fft=400))
    >>> compare(fp, fp.model_copy(update={"layers": [8, 16]}))
    ['layers']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Version of the on-disk layout written by :mod:`feature_store.store`; bump on any change a
#: reader of the old layout would misread.
FORMAT_VERSION = 1

Codec = Literal["fp16", "bf16", "int8"]


class MelSettings(BaseModel):
    """The log-mel front end the teacher saw (Whisper: 80 or 128 bins, 16 kHz, hop 160, n_fft 400)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Defaults are Whisper's (tiny..large-v2; large-v3 has 128 mel bins).
    n_mels: int = Field(80, ge=1)
    sampling_rate: int = Field(16000, ge=1)
    hop_length: int = Field(160, ge=1)
    n_fft: int = Field(400, ge=1)


class StoreFingerprint(BaseModel):
    """Everything that determines the stored numbers; two stores with equal fingerprints are
    interchangeable.

    ``layers`` follows Hugging Face ``hidden_states`` indexing: 0 is the embedding output (after
    the conv stem and positions), ``i`` the output of encoder layer ``i``. The order given is the
    order of the layer axis on disk. ``frame_rate_hz`` is the teacher frame rate after pooling
    (Whisper: 50 / pooling), used to turn frame counts into audio hours. ``window`` says how the
    teacher encoder saw each clip (``"full"``: padded to Whisper's 30 s; ``"trim"``: a window of the
    clip length rounded up to ``window_step_s``, at least ``min_window_s``), which changes the states;
    a store written before the field existed used the full window and reads as ``"full"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher: str = Field(min_length=1, description="teacher model spec, e.g. an HF id or local path")
    teacher_weights: str = Field(min_length=1, description="sha256 of the teacher weights")
    layers: list[int] = Field(min_length=1, description="teacher hidden_states indices, in stored order")
    pooling: int = Field(1, ge=1, description="temporal average-pool factor; 1 = none")
    codec: Codec = "fp16"
    width: int = Field(ge=1, description="teacher hidden size")
    frame_rate_hz: float = Field(gt=0, description="teacher frames per second after pooling")
    mel: MelSettings
    window: Literal["full", "trim"] = Field(
        "full", description="teacher encoder window: Whisper's padded 30 s, or length buckets (trim)"
    )
    window_step_s: float | None = Field(
        None, gt=0, description="trim: bucket granularity in seconds; None for the full window"
    )
    min_window_s: float | None = Field(None, ge=0, description="trim: shortest window; None for full")
    format_version: int = FORMAT_VERSION

    @field_validator("layers")
    @classmethod
    def _layers_distinct_and_nonnegative(cls, layers: list[int]) -> list[int]:
        if any(layer < 0 for layer in layers):
            raise ValueError(f"layer indices must be >= 0, got {layers}")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layer indices must be distinct, got {layers}")
        return layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @field_validator("window_step_s", "min_window_s")
    @classmethod
    def _trim_settings_only_with_trim(cls, value: float | None, info: Any) -> float | None:
        if value is not None and info.data.get("window") == "full":
            raise ValueError(f"{info.field_name} applies to window='trim' only; use None with 'full'")
        return value

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _as_plain_dict(fingerprint: StoreFingerprint | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(fingerprint, BaseModel):
        return fingerprint.model_dump(mode="json")
    return dict(fingerprint)


def _differences(expected: Any, found: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    # Nested mappings (mel) are compared field by field so that the message says "mel.n_mels".
    if isinstance(expected, Mapping) and isinstance(found, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for name in list(expected) + [k for k in found if k not in expected]:
            missing = "<absent>"
            out += _differences(
                expected.get(name, missing), found.get(name, missing), f"{prefix}{name}."
            )
        return out
    if expected != found:
        return [(prefix.rstrip("."), expected, found)]
    return []


def differences(
    expected: StoreFingerprint | Mapping[str, Any], found: StoreFingerprint | Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """``(field, expected value, found value)`` for each differing field (dotted for ``mel``)."""
    return _differences(_as_plain_dict(expected), _as_plain_dict(found), "")


def compare(
    expected: StoreFingerprint | Mapping[str, Any], found: StoreFingerprint | Mapping[str, Any]
) -> list[str]:
    """Names of the fields that differ, e.g. ``["codec", "mel.n_mels"]``; empty when equal.

    Accepts models or plain dicts, so a stored fingerprint from a newer format (with fields this
    code does not know) can still be compared and reported instead of failing to parse.
    """
    return [name for name, _, _ in differences(expected, found)]


class FingerprintMismatch(ValueError):
    """The store was written for different teacher features than the caller expects.

    ``fields`` lists the differing field names; the message gives both values of each.
    """

    def __init__(
        self,
        expected: StoreFingerprint | Mapping[str, Any],
        found: StoreFingerprint | Mapping[str, Any],
        where: str | None = None,
    ) -> None:
        diffs = differences(expected, found)
        self.fields = [name for name, _, _ in diffs]
        self.expected = _as_plain_dict(expected)
        self.found = _as_plain_dict(found)
        details = "; ".join(f"{name}: expected {want!r}, found {got!r}" for name, want, got in diffs)
        place = f" at {where}" if where else ""
        super().__init__(
            f"feature store{place} has a different fingerprint ({details}); "
            "use a new store path, or recompute it with the stored settings"
        )


def check(
    expected: StoreFingerprint | Mapping[str, Any],
    found: StoreFingerprint | Mapping[str, Any],
    where: str | None = None,
) -> None:
    """Raise :class:`FingerprintMismatch` unless ``expected`` and ``found`` are equal."""
    if compare(expected, found):
        raise FingerprintMismatch(expected, found, where)
