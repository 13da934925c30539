"""Check a feature store against the checksums its commit markers recorded.

Every array of every committed shard group is read back chunk by chunk through zarr, hashed
(sha256 of the decoded, C-order bytes, the same bytes the writer hashed) and compared with the
marker. A flipped byte fails the chunk's crc32c or changes the hash; a truncated chunk fails
to decode; a deleted chunk reads back as fill value (zarr does not complain) and is caught by
counting chunk files and by the hash. Damaged shards can be uncommitted so that the next
precompute redoes exactly them::

    >>> from feature_store import FeatureStore, verify
    >>> store = FeatureStore.open("/data/features.zarr", mode="a")  # doctest: +SKIP
    >>> report = verify(store)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    3 shards: 2 ok, 1 damaged, 0 uncommitted
      shard-000007: data chunk 12 (frames 3072-3327, data/c/12/0/0): ...
    >>> for name in report.damaged:  # doctest: +SKIP
    ...     store.uncommit(name)             # or verify(store, uncommit_damaged=True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import zarr

from feature_store.codecs import CHANNEL_SCALE_DTYPE, SCALE_DTYPE, STORAGE_DTYPE
from feature_store.schema import ShardCommit
from feature_store.store import FeatureStore

ShardState = Literal["ok", "damaged", "uncommitted"]


@dataclass
class ShardVerification:
    shard_name: str
    state: ShardState
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Per-shard outcome of :func:`verify`."""

    shards: dict[str, ShardVerification]

    @property
    def ok(self) -> bool:
        """True when no committed shard is damaged (uncommitted groups are just pending)."""
        return not self.damaged

    @property
    def damaged(self) -> list[str]:
        return sorted(n for n, s in self.shards.items() if s.state == "damaged")

    def count(self, state: ShardState) -> int:
        return sum(1 for s in self.shards.values() if s.state == state)

    def summary(self) -> str:
        lines = [
            f"{len(self.shards)} shards: {self.count('ok')} ok, {self.count('damaged')} damaged, "
            f"{self.count('uncommitted')} uncommitted"
        ]
        for name in self.damaged:
            lines += [f"  {name}: {problem}" for problem in self.shards[name].problems]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            name: {"state": s.state, "problems": s.problems} for name, s in sorted(self.shards.items())
        }


def _hash_array(
    name: str, array: zarr.Array, block_frames: int, problems: list[str]
) -> str | None:
    """sha256 of the array's decoded bytes read in chunk-aligned blocks along axis 0; None (with
    a problem per unreadable chunk) when any block cannot be decoded."""
    digest = hashlib.sha256()
    readable = True
    total = array.shape[0]
    chunk = array.chunks[0]
    tail = "/0" * (array.ndim - 1)
    for start in range(0, total, block_frames):
        end = min(total, start + block_frames)
        try:
            digest.update(np.ascontiguousarray(array[start:end]).tobytes())
        except Exception as exc:  # zarr/codec errors have no common base class
            readable = False
            index = start // chunk
            problems.append(
                f"{name} chunk {index} (frames {start}-{end - 1}, {name}/c/{index}{tail}) "
                f"unreadable: {type(exc).__name__}: {exc}"
            )
    return digest.hexdigest() if readable else None


def _check_array(
    group: zarr.Group,
    name: str,
    expected_shape: tuple[int, ...],
    expected_dtype: np.dtype,
    checksum: str | None,
    problems: list[str],
) -> None:
    try:
        array = group[name]
    except Exception as exc:
        problems.append(f"{name}: cannot open array: {type(exc).__name__}: {exc}")
        return
    if tuple(array.shape) != expected_shape:
        problems.append(f"{name}: shape {tuple(array.shape)}, marker implies {expected_shape}")
        return
    if np.dtype(array.dtype) != expected_dtype:
        problems.append(f"{name}: dtype {array.dtype}, expected {expected_dtype}")
        return
    missing = array.nchunks - array.nchunks_initialized
    if missing:
        # zarr would silently return fill values for them.
        problems.append(f"{name}: {missing} of {array.nchunks} chunk files missing")
    # One chunk per block, so that a problem names the chunk it is in.
    digest = _hash_array(name, array, array.chunks[0], problems)
    if digest is not None and checksum is not None and digest != checksum:
        problems.append(f"{name}: sha256 {digest[:12]}... differs from marker {checksum[:12]}...")


def verify_shard(store: FeatureStore, shard_name: str) -> ShardVerification:
    """Check one shard group; see :func:`verify`."""
    marker_text = store.read_commit_marker_text(shard_name)
    if marker_text is None:
        return ShardVerification(shard_name, "uncommitted")
    problems: list[str] = []
    try:
        commit = ShardCommit.model_validate_json(marker_text)
    except ValueError as exc:
        return ShardVerification(shard_name, "damaged", [f"commit marker unreadable: {exc}"])
    fp = store.fingerprint
    if (commit.num_layers, commit.width, commit.codec) != (fp.num_layers, fp.width, fp.codec):
        problems.append(
            f"marker says layers={commit.num_layers} width={commit.width} codec={commit.codec}, "
            f"store fingerprint says {fp.num_layers}, {fp.width}, {fp.codec}"
        )
    if len(commit.keys) != commit.num_samples or len(commit.lengths) != commit.num_samples:
        problems.append("marker keys/lengths do not match its sample count")
    if sum(commit.lengths) != commit.num_frames:
        problems.append("marker lengths do not sum to its frame count")
    try:
        group = store.open_shard_group(shard_name)
    except Exception as exc:
        problems.append(f"cannot open shard group: {type(exc).__name__}: {exc}")
        return ShardVerification(shard_name, "damaged", problems)

    frames, samples = commit.num_frames, commit.num_samples
    sums = commit.checksums
    _check_array(group, "data", (frames, fp.num_layers, fp.width), STORAGE_DTYPE[fp.codec],
                 sums.get("data"), problems)
    if fp.codec == "int8":
        _check_array(group, "scale", (frames, fp.num_layers), SCALE_DTYPE, sums.get("scale"),
                     problems)
        _check_array(group, "channel_scale", (samples, fp.num_layers, fp.width),
                     CHANNEL_SCALE_DTYPE, sums.get("channel_scale"), problems)
    _check_array(group, "offsets", (samples + 1,), np.dtype(np.int64), sums.get("offsets"), problems)
    _check_array(group, "lengths", (samples,), np.dtype(np.int64), sums.get("lengths"), problems)
    if commit.stats_frames is not None:  # groups written before target statistics have none
        for name in ("stats_sum", "stats_m2"):
            _check_array(group, name, (fp.num_layers, fp.width), np.dtype(np.float64), sums.get(name),
                         problems)
    try:
        keys = [str(k) for k in group["keys"][:]] if samples else []
        digest = hashlib.sha256(json.dumps(keys).encode()).hexdigest()
        if keys != commit.keys or digest != sums.get("keys"):
            problems.append("keys: stored keys differ from the marker's")
    except Exception as exc:
        problems.append(f"keys: unreadable: {type(exc).__name__}: {exc}")
    return ShardVerification(shard_name, "damaged" if problems else "ok", problems)


def verify(
    store: FeatureStore, shards: Iterable[str] | None = None, *, uncommit_damaged: bool = False
) -> VerifyReport:
    """Re-read and checksum every committed shard (or just ``shards``).

    Returns a :class:`VerifyReport`: per shard ``ok``, ``damaged`` (with reasons) or
    ``uncommitted`` (a group without marker: pending work, not damage). With
    ``uncommit_damaged`` the damaged shards lose their marker (the store must be open in mode
    ``"a"``), so that the next precompute run recomputes exactly those.
    """
    names = sorted(store.shard_groups() if shards is None else shards)
    report = VerifyReport({name: verify_shard(store, name) for name in names})
    if uncommit_damaged:
        for name in report.damaged:
            store.uncommit(name)
    return report
