"""The zarr v3 feature store: per-layer teacher hidden states, one group per input shard.

Layout (``<store>`` is a directory, or an fsspec URL that zarr supports)::

    <store>/zarr.json               root group; attrs["aura_feature_store"] holds the
                                    fingerprint and the chunk layout
    <store>/shards/<shard>/         one group per input (webdataset) shard, holding:
      data           (frames, layers, width)   codec dtype; all samples' frames concatenated,
                                               no padding; chunks: chunk_frames x layers x width
      scale          (frames, layers) f32      int8 only: absmax scale per frame and layer
      channel_scale  (samples, layers, width)  int8 only: f16 per-sample channel absmax
      offsets        (samples + 1,) int64      sample i is data[offsets[i]:offsets[i+1]]
      lengths        (samples,) int64          frames per sample
      keys           (samples,) string         sample keys, in order
      stats_sum      (layers, width) f64       sum over the group's training-split frames
      stats_m2       (layers, width) f64       sum of squared deviations from the group's mean
                                               over the same frames (count: marker stats_frames)
      _COMMITTED.json                          written last: counts, keys, lengths, sha256 of
                                               every array, per-sample failures
    <store>/target_stats.npz        per-layer mean/std aggregated over all committed groups
                                    (a cache, rewritten by each precompute run; see
                                    FeatureStore.target_stats)
    <store>/_leases/<shard>.lease   who is writing which shard (see feature_store.lease)

A shard group without ``_COMMITTED.json`` is garbage: readers skip it and the next writer
deletes and redoes it. Chunk files and metadata are written atomically by zarr's local store
(temp file + rename), the marker likewise, and each chunk carries a crc32c, so a writer killed
at any point leaves an uncommitted group, never a committed one with bad bytes.

Precompute side (one writer per shard, guarded by a lease)::

    >>> from feature_store import FeatureStore
    >>> store = FeatureStore.open("/data/features.zarr", fingerprint, mode="a")  # doctest: +SKIP
    >>> for lease in store.iter_claims(manifest_shard_names, owner="precompute-3"):  # doctest: +SKIP
    ...     with store.shard_writer(lease.shard_name, lease) as writer:
    ...         for key, audio in samples_of(lease.shard_name):
    ...             try:
    ...                 writer.add(key, teacher_hidden_states(audio))  # (layers, frames, width)
    ...             except DecodeError as e:
    ...                 writer.add_failure(key, str(e))
    ...     # committed on clean exit; on an exception nothing is committed

Training side::

    >>> store = FeatureStore.open("/data/features.zarr", fingerprint)  # read-only  # doctest: +SKIP
    >>> targets = store.read("utt-000017")  # float32 (layers, frames, width)  # doctest: +SKIP
    >>> for key, t in store.iter_shard_torch("shard-000042"):  # doctest: +SKIP
    ...     ...
    >>> stats = store.target_stats()  # per-layer channel mean/std, training split  # doctest: +SKIP
    >>> y = stats.standardise(targets)  # (targets - mean) / std, per layer and channel  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
import time
import urllib.parse
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
from pydantic import BaseModel, ConfigDict, Field
from zarr.codecs import Crc32cCodec, ZstdCodec

from feature_store.codecs import CHANNEL_SCALE_DTYPE, SCALE_DTYPE, STORAGE_DTYPE, decode, encode
from feature_store.fingerprint import FORMAT_VERSION, FingerprintMismatch, StoreFingerprint, check
from feature_store.lease import DEFAULT_TTL_S, Lease, LeaseLost, active_leases, try_claim

if TYPE_CHECKING:
    import torch

ROOT_ATTR = "aura_feature_store"
SHARDS_GROUP = "shards"
LEASES_DIR = "_leases"
COMMIT_MARKER = "_COMMITTED.json"
TARGET_STATS_FILE = "target_stats.npz"
#: Samples of this split (a sample without one counts as training, as in pipeline.train.data)
#: contribute to the target statistics.
TARGET_STATS_SPLIT = "train"
#: Variance floor of the target statistics (std >= 1e-3): a constant channel must not blow up.
TARGET_STATS_VAR_EPS = 1e-6
#: A few hundred frames x all layers x full width: one sample read touches 1-3 chunks, and a
#: chunk (256 x 8 x 1280 x 2 B = 5 MB for 8 fp16 layers) is big enough for object stores.
DEFAULT_CHUNK_FRAMES = 256

Compression = Literal["none", "zstd"]
#: Fingerprint fields that stores written before they existed lack, with the value they had.
LEGACY_FINGERPRINT_FIELDS: dict[str, Any] = {"window": "full", "window_step_s": None, "min_window_s": None}


class ShardAlreadyCommitted(RuntimeError):
    """A writer was opened on a shard that is already committed (and overwrite was not asked)."""


class ShardBusy(RuntimeError):
    """Another live worker holds the shard's lease."""


class StoreLayout(BaseModel):
    """How arrays are chunked and compressed; fixed at store creation (values do not depend on
    it, so it is not part of the fingerprint)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_frames: int = Field(DEFAULT_CHUNK_FRAMES, ge=1)
    compression: Compression = "none"
    chunk_checksums: bool = True  # crc32c per chunk: a flipped bit fails the read loudly


class ShardCommit(BaseModel):
    """Content of a shard group's commit marker."""

    model_config = ConfigDict(extra="ignore")

    format_version: int = FORMAT_VERSION
    shard_name: str
    num_samples: int
    num_frames: int
    num_layers: int
    width: int
    codec: str
    keys: list[str]
    lengths: list[int]
    checksums: dict[str, str]  # array name -> sha256 of its decoded (C-order) bytes
    failures: dict[str, str] = {}  # sample key -> reason it has no features
    # Frames of the training-split samples summarised in stats_sum / stats_m2; None for a group
    # written before target statistics existed.
    stats_frames: int | None = None
    stats_samples: int | None = None
    owner: str | None = None
    hostname: str | None = None
    pid: int | None = None
    committed_at: float = 0.0


def default_compression(codec: str) -> Compression:
    """Compression per codec, from measurements on gaussian activations with outlier channels
    (2-core CPU, zstd level 1): fp16 is noise-like, zstd saves only ~8% and reads ~3x slower,
    so none (2.05 bytes per frame per layer per width on disk, edge chunks included); bf16
    compresses ~22% (its 8 exponent bits are predictable; 1.56 on disk) and int8 ~8-50%
    depending on outliers (0.93 on disk), so zstd for both."""
    return "none" if codec == "fp16" else "zstd"


def shard_dir_name(shard_name: str) -> str:
    """Filesystem-safe, reversible form of a shard name (``a/b.tar`` -> ``a%2Fb.tar``)."""
    if not shard_name or shard_name in {".", ".."}:
        raise ValueError(f"invalid shard name {shard_name!r}")
    return urllib.parse.quote(shard_name, safe="-_.")


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _keys_checksum(keys: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(keys)).encode()).hexdigest()


def _array_checksum(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


class _Location:
    """Filesystem operations on the store root that zarr does not offer (markers, deletes,
    listing, fsync), for a local directory or, through fsspec, a remote URL."""

    def __init__(self, path: str | os.PathLike[str], storage_options: dict[str, Any] | None):
        text = os.fspath(path)
        self.storage_options = storage_options or {}
        if "://" in text and not text.startswith("file://"):
            import fsspec

            self.local = False
            self.fs, self.root = fsspec.core.url_to_fs(text, **self.storage_options)
            self.url = text.rstrip("/")
        else:
            self.local = True
            self.fs = None
            self.root = str(Path(text.removeprefix("file://")).absolute())
            self.url = self.root

    def path(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def zarr_path(self, rel: str = "") -> str:
        return f"{self.url}/{rel}" if rel else self.url

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.path(rel)) if self.local else self.fs.exists(self.path(rel))

    def read_text(self, rel: str) -> str | None:
        try:
            if self.local:
                with open(self.path(rel)) as f:
                    return f.read()
            return self.fs.cat_file(self.path(rel)).decode()
        except FileNotFoundError:
            return None

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            if self.local:
                with open(self.path(rel), "rb") as f:
                    return f.read()
            return self.fs.cat_file(self.path(rel))
        except FileNotFoundError:
            return None

    def write_text_atomic(self, rel: str, text: str, fsync: bool) -> None:
        self.write_bytes_atomic(rel, text.encode(), fsync)

    def write_bytes_atomic(self, rel: str, payload: bytes, fsync: bool) -> None:
        if not self.local:
            self.fs.pipe_file(self.path(rel), payload)  # object PUTs are atomic
            return
        target = Path(self.path(rel))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if fsync:
            _fsync_dir(target.parent)

    def delete_file(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.local:
                os.unlink(self.path(rel))
            else:
                self.fs.rm_file(self.path(rel))

    def rmtree(self, rel: str) -> None:
        if self.local:
            shutil.rmtree(self.path(rel), ignore_errors=True)
        elif self.fs.exists(self.path(rel)):
            self.fs.rm(self.path(rel), recursive=True)

    def list_dirs(self, rel: str) -> list[str]:
        if self.local:
            try:
                return [e.name for e in os.scandir(self.path(rel)) if e.is_dir()]
            except FileNotFoundError:
                return []
        if not self.fs.exists(self.path(rel)):
            return []
        return [
            info["name"].rstrip("/").rsplit("/", 1)[-1]
            for info in self.fs.ls(self.path(rel), detail=True)
            if info["type"] == "directory"
        ]

    def du(self, rel: str = "") -> int:
        if not self.local:
            return int(self.fs.du(self.path(rel))) if self.fs.exists(self.path(rel)) else 0
        total = 0
        for dirpath, _, files in os.walk(self.path(rel)):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
        return total

    def fsync_tree(self, rel: str) -> None:
        """Flush a written group to stable storage before its marker says it is complete."""
        if not self.local:
            return
        for dirpath, _, files in os.walk(self.path(rel)):
            for name in files:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_root_exclusively(loc: _Location, attributes: dict[str, Any]) -> None:
    """Create the root group unless one exists; of two concurrent creators exactly one wins
    (locally: build zarr.json in a temp dir and hard-link it into place)."""
    if not loc.local:
        with contextlib.suppress(zarr.errors.ContainsGroupError, FileExistsError):
            zarr.open_group(
                loc.zarr_path(), mode="w-", attributes=attributes, zarr_format=3,
                storage_options=loc.storage_options,
            )
        return
    os.makedirs(loc.root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".creating-", dir=loc.root)
    try:
        zarr.open_group(tmp, mode="w", attributes=attributes, zarr_format=3)
        with contextlib.suppress(FileExistsError):
            os.link(os.path.join(tmp, "zarr.json"), loc.path("zarr.json"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _ShardHandle:
    """Open arrays of one committed shard group, cached by the reader."""

    commit: ShardCommit
    data: zarr.Array
    scale: zarr.Array | None  # int8 only
    channel_scale: zarr.Array | None  # int8 only
    offsets: np.ndarray


class _BlockCursor:
    """Reads rows [start, end) of an array for monotonically increasing requests, fetching
    chunk-aligned blocks so that each chunk is read and decoded once."""

    def __init__(self, array: zarr.Array, block_rows: int) -> None:
        self.array = array
        chunk = array.chunks[0]
        self.block = max(chunk, block_rows // chunk * chunk)
        self.total = array.shape[0]
        self.buffer: np.ndarray | None = None
        self.buf_start = self.buf_end = 0

    def get(self, start: int, end: int) -> np.ndarray:
        if end > self.buf_end:
            chunk = self.array.chunks[0]
            first = max(start, self.buf_end)
            new_end = min(self.total, max(first + self.block, -(-end // chunk) * chunk))
            fresh = self.array[first:new_end]
            if self.buffer is not None and self.buf_end > start:
                fresh = np.concatenate([self.buffer[start - self.buf_start :], fresh])
            self.buffer, self.buf_start, self.buf_end = fresh, start, new_end
        assert self.buffer is not None and start >= self.buf_start
        return self.buffer[start - self.buf_start : end - self.buf_start]


class _Moments:
    """Count, sum and sum of squared deviations (float64, per layer and channel), combined with
    Chan et al.'s pairwise update: no sum-of-squares cancellation, however many frames."""

    def __init__(self, layers: int, width: int) -> None:
        self.count = 0
        self.sum = np.zeros((layers, width), dtype=np.float64)
        self.m2 = np.zeros((layers, width), dtype=np.float64)

    def add(self, count: int, total: np.ndarray, m2: np.ndarray) -> None:
        if count == 0:
            return
        if self.count == 0:
            self.count, self.sum, self.m2 = count, total.astype(np.float64), m2.astype(np.float64)
            return
        n = self.count + count
        delta = total / count - self.sum / self.count
        self.m2 = self.m2 + m2 + delta * delta * (self.count * count / n)
        self.sum = self.sum + total
        self.count = n

    def add_frames(self, x: np.ndarray) -> None:
        """Frames ``(layers, frames, width)``."""
        x = x.astype(np.float64)
        total = x.sum(axis=1)
        m2 = ((x - total[:, None, :] / x.shape[1]) ** 2).sum(axis=1)
        self.add(x.shape[1], total, m2)


@dataclass(frozen=True)
class TargetStats:
    """Per-layer, per-channel mean and standard deviation of the stored teacher states over the
    training split (:data:`TARGET_STATS_SPLIT`) of all committed shards.

    ``mean`` and ``std`` are float32 ``(layers, width)`` in fingerprint layer order; ``std`` is
    the population standard deviation, floored at ``sqrt(TARGET_STATS_VAR_EPS)``.

    Raw Whisper states share a large component (a constant training-mean vector already scores
    a high cosine), so a distillation loss should compare *standardised* targets: for teacher
    layer ``layers[i]``, ``y_std = (y - mean[i]) / std[i]`` per channel (:meth:`standardise`),
    and the student head predicts ``y_std`` (cosine or MSE on the standardised vectors; to get
    teacher-space states back, ``pred * std[i] + mean[i]``, e.g. for Whisper's decoder). Use
    these statistics for held-out targets too: they come from training frames only.
    """

    layers: list[int]
    mean: np.ndarray
    std: np.ndarray
    frames: int
    samples: int
    shards: int

    def positions(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return list(range(len(self.layers)))
        return [self.layers.index(layer) for layer in layers]

    def standardise(self, targets: np.ndarray, layers: Sequence[int] | None = None) -> np.ndarray:
        """``(targets - mean) / std`` for float ``(layers, frames, width)`` targets (numpy or
        torch); ``layers`` names their layer axis (default: all stored layers, in order)."""
        idx = self.positions(layers)
        mean, std = self.mean[idx][:, None, :], self.std[idx][:, None, :]
        if not isinstance(targets, np.ndarray):  # a torch tensor
            import torch

            mean = torch.as_tensor(mean, device=targets.device, dtype=targets.dtype)
            std = torch.as_tensor(std, device=targets.device, dtype=targets.dtype)
        return (targets - mean) / std


def _stats_from_moments(layers: list[int], moments: _Moments, samples: int, shards: int) -> TargetStats:
    if moments.count == 0:
        raise ValueError(f"no {TARGET_STATS_SPLIT!r}-split frames in the committed shards: no target statistics")
    mean = moments.sum / moments.count
    var = np.maximum(moments.m2 / moments.count, TARGET_STATS_VAR_EPS)
    return TargetStats(layers, mean.astype(np.float32), np.sqrt(var).astype(np.float32),
                       moments.count, samples, shards)


class FeatureStore:
    """A zarr feature store; see the module docstring for the layout and usage.

    Open with :meth:`open`. Reads see committed shard groups only; writes go through
    :meth:`shard_writer`, one writer per shard, guarded by a lease (:meth:`try_claim`).
    """

    def __init__(
        self,
        loc: _Location,
        fingerprint: StoreFingerprint,
        layout: StoreLayout,
        read_only: bool,
        lease_dir: str | None,
        fsync: bool,
    ) -> None:
        self._loc = loc
        self.fingerprint = fingerprint
        self.layout = layout
        self.read_only = read_only
        self.lease_dir = lease_dir
        self.fsync = fsync
        self._commits: dict[str, ShardCommit] | None = None
        self._index: dict[str, tuple[str, int]] | None = None
        self._handles: dict[str, _ShardHandle] = {}

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        fingerprint: StoreFingerprint | None = None,
        mode: Literal["r", "a"] = "r",
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        compression: Compression | Literal["auto"] = "auto",
        lease_dir: str | os.PathLike[str] | None = None,
        fsync: bool = True,
        storage_options: dict[str, Any] | None = None,
    ) -> FeatureStore:
        """Open the store at ``path``; in mode ``"a"`` create it when absent.

        ``fingerprint`` is what the caller expects; a store holding anything else is refused
        with :class:`FingerprintMismatch` naming the differing fields. ``None`` accepts the
        stored one (for inspection tools such as verify and status). ``chunk_frames`` and
        ``compression`` apply only when creating. ``lease_dir`` defaults to ``<store>/_leases``
        for local stores; remote stores need a shared POSIX directory for leases.
        ``fsync=False`` skips flushing groups to disk before their marker (faster; a power cut,
        unlike a killed process, may then leave a committed group with lost bytes).
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        loc = _Location(path, storage_options)
        if not loc.exists("zarr.json"):
            if mode == "r":
                raise FileNotFoundError(f"no feature store at {loc.url}")
            if fingerprint is None:
                raise ValueError(f"creating a feature store at {loc.url} needs a fingerprint")
            layout = StoreLayout(
                chunk_frames=chunk_frames,
                compression=default_compression(fingerprint.codec)
                if compression == "auto"
                else compression,
            )
            attrs = {
                ROOT_ATTR: {
                    "fingerprint": fingerprint.to_json_dict(),
                    "layout": layout.model_dump(mode="json"),
                }
            }
            _create_root_exclusively(loc, attrs)

        root = zarr.open_group(
            loc.zarr_path(), mode="r", zarr_format=3, storage_options=loc.storage_options or None
        )
        meta = root.attrs.get(ROOT_ATTR)
        if meta is None:
            raise ValueError(f"{loc.url} is a zarr group but not an AuRA feature store")
        # Fields added after format 1 was released, as stores written before them had them.
        stored = {**LEGACY_FINGERPRINT_FIELDS, **meta["fingerprint"]}
        if fingerprint is not None:
            check(fingerprint, stored, where=loc.url)
        try:
            stored_fp = StoreFingerprint.model_validate(stored)
        except ValueError:
            # A newer format with fields unknown here: report it as a mismatch, not a crash.
            raise FingerprintMismatch(
                {**stored, "format_version": FORMAT_VERSION}, stored, where=loc.url
            ) from None
        if stored_fp.format_version != FORMAT_VERSION:
            # Same fields, other layout semantics: this code must not guess how to read it.
            raise FingerprintMismatch(
                stored_fp.model_copy(update={"format_version": FORMAT_VERSION}), stored_fp,
                where=loc.url,
            )
        layout = StoreLayout.model_validate(meta["layout"])

        if mode == "a" and loc.local and not loc.exists(f"{SHARDS_GROUP}/zarr.json"):
            # So that zarr tools browsing the hierarchy see the shard groups.
            with contextlib.suppress(zarr.errors.ContainsGroupError, FileExistsError):
                zarr.open_group(loc.zarr_path(SHARDS_GROUP), mode="w-", zarr_format=3)

        if lease_dir is None and loc.local:
            lease_dir = loc.path(LEASES_DIR)
        return cls(
            loc,
            stored_fp,
            layout,
            read_only=(mode == "r"),
            lease_dir=os.fspath(lease_dir) if lease_dir is not None else None,
            fsync=fsync,
        )

    @property
    def path(self) -> str:
        return self._loc.url

    def __repr__(self) -> str:
        return (
            f"FeatureStore({self.path!r}, teacher={self.fingerprint.teacher!r}, "
            f"layers={self.fingerprint.layers}, codec={self.fingerprint.codec!r})"
        )

    # ------------------------------------------------------------------ shard groups
    def _group_rel(self, shard_name: str) -> str:
        return f"{SHARDS_GROUP}/{shard_dir_name(shard_name)}"

    def shard_groups(self) -> set[str]:
        """Names of all shard groups present on disk, committed or not."""
        return {urllib.parse.unquote(d) for d in self._loc.list_dirs(SHARDS_GROUP)}

    def commit_info(self, shard_name: str) -> ShardCommit | None:
        """The shard's commit marker, or None when the shard is absent or uncommitted."""
        text = self.read_commit_marker_text(shard_name)
        if text is None:
            return None
        try:
            return ShardCommit.model_validate_json(text)
        except ValueError:
            return None  # a damaged marker commits nothing; verify reports it

    def commits(self) -> dict[str, ShardCommit]:
        """Commit markers of all committed shards, by shard name (a fresh scan)."""
        commits = {}
        for name in sorted(self.shard_groups()):
            commit = self.commit_info(name)
            if commit is not None:
                commits[name] = commit
        return commits

    def _all_commits(self) -> dict[str, ShardCommit]:
        if self._commits is None:
            self._commits = self.commits()
        return self._commits

    def committed_shards(self) -> set[str]:
        """Names of the shard groups whose commit marker is present (rescanned each call; the
        read index keeps its view until :meth:`refresh`)."""
        return {name for name in self.shard_groups() if self.commit_info(name) is not None}

    def is_committed(self, shard_name: str) -> bool:
        return self.commit_info(shard_name) is not None

    def refresh(self) -> None:
        """Forget cached markers and indexes, e.g. to see shards committed by other workers."""
        self._commits = None
        self._index = None
        self._handles.clear()

    def _require_writable(self) -> None:
        if self.read_only:
            raise PermissionError(f"feature store {self.path} was opened read-only (mode='r')")

    def uncommit(self, shard_name: str) -> None:
        """Remove the shard's commit marker, so that the next precompute redoes the shard
        (e.g. after :func:`feature_store.verify.verify` found it damaged)."""
        self._require_writable()
        self._loc.delete_file(f"{self._group_rel(shard_name)}/{COMMIT_MARKER}")
        self.refresh()

    def delete_shard(self, shard_name: str) -> None:
        """Remove the shard group entirely (marker first, so no reader sees a partial group)."""
        self._require_writable()
        self.uncommit(shard_name)
        self._loc.rmtree(self._group_rel(shard_name))

    def bytes_on_disk(self, shard_name: str | None = None) -> int:
        """Total size of the files of one shard group, or of everything under the store root
        (data, metadata, markers, leases, uncommitted groups)."""
        return self._loc.du(self._group_rel(shard_name) if shard_name is not None else "")

    def open_shard_group(self, shard_name: str) -> zarr.Group:
        """The shard's zarr group, read-only, committed or not (for inspection and verify)."""
        return zarr.open_group(
            self._loc.zarr_path(self._group_rel(shard_name)), mode="r", zarr_format=3,
            storage_options=self._loc.storage_options or None,
        )

    def read_commit_marker_text(self, shard_name: str) -> str | None:
        """Raw text of the shard's commit marker (None when absent), e.g. to report damage."""
        return self._loc.read_text(f"{self._group_rel(shard_name)}/{COMMIT_MARKER}")

    # ------------------------------------------------------------------ leases and writing
    def try_claim(self, shard_name: str, owner: str | None = None, ttl_s: float = DEFAULT_TTL_S) -> Lease | None:
        """Take the lease on ``shard_name`` (stealing it from a dead or silent holder); None if
        another live worker holds it. Claiming does not check whether the shard is committed:
        :meth:`iter_claims` does, after claiming, which is the race-free order."""
        self._require_writable()
        if self.lease_dir is None:
            raise NotImplementedError(
                f"store {self.path} is not on a local filesystem: pass lease_dir= (a directory "
                "shared by all workers) to FeatureStore.open to write it concurrently"
            )
        return try_claim(
            self.lease_dir, shard_name, owner or default_owner(), ttl_s,
            file_name=shard_dir_name(shard_name),
        )

    def iter_claims(
        self, shard_names: Iterable[str], owner: str | None = None, ttl_s: float = DEFAULT_TTL_S
    ) -> Iterator[Lease]:
        """Leases on the given shards that are not committed and not held by a live worker.

        Hand each to :meth:`shard_writer`, which releases it. Several jobs may iterate the same
        list at once: each shard is yielded to exactly one of them.
        """
        for shard_name in shard_names:
            if self.is_committed(shard_name):
                continue
            lease = self.try_claim(shard_name, owner, ttl_s)
            if lease is None:
                continue
            # Checked again under the lease: the previous holder may have committed meanwhile.
            if self.is_committed(shard_name):
                lease.release()
                continue
            yield lease

    def shard_writer(
        self,
        shard_name: str,
        lease: Lease | None = None,
        *,
        owner: str | None = None,
        overwrite: bool = False,
        flush_frames: int | None = None,
    ) -> ShardWriter:
        """A writer for one shard group, to use as a context manager.

        Without ``lease`` it claims one itself (raising :class:`ShardBusy` if a live worker
        holds it). The lease is renewed while writing and released at the end. Any uncommitted
        group of that name is deleted first; a committed one raises
        :class:`ShardAlreadyCommitted` unless ``overwrite``.
        """
        self._require_writable()
        if lease is None:
            lease = self.try_claim(shard_name, owner)
            if lease is None:
                raise ShardBusy(f"shard {shard_name!r} is being written by another worker")
        elif lease.shard_name != shard_name:
            raise ValueError(f"lease is for shard {lease.shard_name!r}, not {shard_name!r}")
        return ShardWriter(self, shard_name, lease, overwrite=overwrite, flush_frames=flush_frames)

    def _compressors(self, data: bool) -> list[Any] | None:
        codecs: list[Any] = []
        if not data or self.layout.compression == "zstd":
            codecs.append(ZstdCodec(level=1))
        if self.layout.chunk_checksums:
            codecs.append(Crc32cCodec())  # last, so it covers the bytes as stored
        return codecs or None

    # ------------------------------------------------------------------ reading
    def _index_map(self) -> dict[str, tuple[str, int]]:
        if self._index is None:
            index: dict[str, tuple[str, int]] = {}
            for shard_name, commit in self._all_commits().items():
                for i, key in enumerate(commit.keys):
                    if key in index:
                        raise ValueError(
                            f"sample key {key!r} is in shards {index[key][0]!r} and {shard_name!r}"
                        )
                    index[key] = (shard_name, i)
            self._index = index
        return self._index

    def keys(self) -> list[str]:
        """Keys of all samples in committed shards, shard by shard in stored order."""
        return list(self._index_map())

    def __contains__(self, key: object) -> bool:
        return key in self._index_map()

    def __len__(self) -> int:
        return len(self._index_map())

    def locate(self, key: str) -> tuple[str, int]:
        """``(shard_name, index within shard)`` of a sample key."""
        try:
            return self._index_map()[key]
        except KeyError:
            raise KeyError(f"sample {key!r} is not in any committed shard of {self.path}") from None

    def lengths(self) -> dict[str, int]:
        """Frames per sample key (from the markers: no array reads), e.g. for length bucketing."""
        return {
            key: length
            for commit in self._all_commits().values()
            for key, length in zip(commit.keys, commit.lengths)
        }

    def failures(self) -> dict[str, str]:
        """Sample key -> reason, for samples that committed shards recorded as failed."""
        return {
            key: reason
            for commit in self._all_commits().values()
            for key, reason in commit.failures.items()
        }

    def _layer_positions(self, layers: Sequence[int] | None) -> list[int] | None:
        if layers is None:
            return None
        stored = self.fingerprint.layers
        missing = [layer for layer in layers if layer not in stored]
        if missing:
            raise KeyError(f"layers {missing} are not stored (stored: {stored})")
        return [stored.index(layer) for layer in layers]

    def _handle(self, shard_name: str) -> _ShardHandle:
        handle = self._handles.get(shard_name)
        if handle is None:
            commit = self._all_commits().get(shard_name) or self.commit_info(shard_name)
            if commit is None:
                raise KeyError(f"shard {shard_name!r} is not committed in {self.path}")
            group = self.open_shard_group(shard_name)
            offsets = np.zeros(len(commit.lengths) + 1, dtype=np.int64)
            np.cumsum(commit.lengths, out=offsets[1:])
            int8 = self.fingerprint.codec == "int8"
            handle = _ShardHandle(
                commit=commit,
                data=group["data"],
                scale=group["scale"] if int8 else None,
                channel_scale=group["channel_scale"] if int8 else None,
                offsets=offsets,
            )
            self._handles[shard_name] = handle
        return handle

    def _decode_sample(
        self,
        values: np.ndarray,
        scale: np.ndarray | None,
        channel_scale: np.ndarray | None,
        positions: list[int] | None,
    ) -> np.ndarray:
        """Stored ``(frames, layers, width)`` rows of one sample -> float32 (layers, frames, width)."""
        # Transpose the compact stored values, not the float32 result: fewer bytes to move.
        values = np.ascontiguousarray(values.transpose(1, 0, 2))
        scale = scale.T if scale is not None else None
        if positions is not None:
            values = values[positions]
            scale = scale[positions] if scale is not None else None
            channel_scale = channel_scale[positions] if channel_scale is not None else None
        return decode(values, scale, self.fingerprint.codec, channel_scale)

    def read(self, key: str, layers: Sequence[int] | None = None) -> np.ndarray:
        """Teacher features of one sample: float32 ``(layers, frames, width)``.

        ``layers`` (teacher layer indices, a subset of the stored ones) selects and orders the
        layer axis; default all stored layers in fingerprint order.
        """
        shard_name, i = self.locate(key)
        handle = self._handle(shard_name)
        start, end = int(handle.offsets[i]), int(handle.offsets[i + 1])
        return self._decode_sample(
            handle.data[start:end],
            handle.scale[start:end] if handle.scale is not None else None,
            handle.channel_scale[i] if handle.channel_scale is not None else None,
            self._layer_positions(layers),
        )

    def read_torch(self, key: str, layers: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`read` as a CPU float32 torch tensor (no copy)."""
        import torch

        return torch.from_numpy(self.read(key, layers))

    def iter_shard(
        self, shard_name: str, layers: Sequence[int] | None = None, block_frames: int | None = None
    ) -> Iterator[tuple[str, np.ndarray]]:
        """``(key, float32 (layers, frames, width))`` for each sample of a committed shard, in
        stored order, reading chunk-aligned blocks so that each chunk is decoded once."""
        handle = self._handle(shard_name)
        positions = self._layer_positions(layers)
        block = block_frames or 8 * self.layout.chunk_frames
        data = _BlockCursor(handle.data, block)
        scale = _BlockCursor(handle.scale, block) if handle.scale is not None else None
        channel_scale = (
            _BlockCursor(handle.channel_scale, 64) if handle.channel_scale is not None else None
        )
        for i, key in enumerate(handle.commit.keys):
            start, end = int(handle.offsets[i]), int(handle.offsets[i + 1])
            yield key, self._decode_sample(
                data.get(start, end),
                scale.get(start, end) if scale is not None else None,
                channel_scale.get(i, i + 1)[0] if channel_scale is not None else None,
                positions,
            )

    def iter_shard_torch(
        self, shard_name: str, layers: Sequence[int] | None = None
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """:meth:`iter_shard` yielding CPU float32 torch tensors."""
        import torch

        for key, array in self.iter_shard(shard_name, layers):
            yield key, torch.from_numpy(array)

    # ------------------------------------------------------------------ target statistics
    def _stats_digest(self, commits: dict[str, ShardCommit]) -> str:
        """Identifies the committed groups (and their statistics) a target_stats file covers."""
        items = [(name, c.checksums.get("stats_sum"), c.checksums.get("stats_m2"))
                 for name, c in sorted(commits.items())]
        return hashlib.sha256(json.dumps(items).encode()).hexdigest()

    def aggregate_target_stats(self) -> TargetStats:
        """:class:`TargetStats` summed over every committed group's stored statistics (reads two
        small arrays per group; no feature data)."""
        commits = self._all_commits()
        legacy = sorted(name for name, c in commits.items() if c.stats_frames is None)
        if legacy:
            raise ValueError(
                f"{len(legacy)} committed shard(s) have no target statistics (written before they "
                f"existed), e.g. {legacy[:3]}; uncommit them (store.uncommit) and rerun precompute"
            )
        fp = self.fingerprint
        moments = _Moments(fp.num_layers, fp.width)
        samples = 0
        for name, commit in sorted(commits.items()):
            if not commit.stats_frames:
                continue
            group = self.open_shard_group(name)
            moments.add(commit.stats_frames, group["stats_sum"][:], group["stats_m2"][:])
            samples += commit.stats_samples or 0
        return _stats_from_moments(list(fp.layers), moments, samples, len(commits))

    def target_stats(self) -> TargetStats:
        """Per-layer channel mean/std of the training-split targets (see :class:`TargetStats`).

        Reads ``<store>/target_stats.npz`` when it covers exactly the committed groups (the
        precompute job rewrites it after each run), else aggregates the groups' statistics
        (:meth:`aggregate_target_stats`). Incremental: each group carries its own count / sum /
        centred sum of squares over its training frames, committed with it, so growing the
        dataset or redoing a repaired shard never recomputes the others.
        """
        commits = self._all_commits()
        payload = self._loc.read_bytes(TARGET_STATS_FILE)
        if payload is not None:
            try:
                with np.load(io.BytesIO(payload), allow_pickle=False) as f:
                    if (str(f["digest"]) == self._stats_digest(commits)
                            and list(f["layers"]) == list(self.fingerprint.layers)):
                        return TargetStats(list(self.fingerprint.layers), f["mean"], f["std"],
                                           int(f["frames"]), int(f["samples"]), int(f["shards"]))
            except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile):
                pass  # a damaged cache is just recomputed
        return self.aggregate_target_stats()

    def write_target_stats(self) -> TargetStats:
        """Aggregate the committed groups' statistics and write ``<store>/target_stats.npz``
        (atomically) so that readers need not re-aggregate; returns them."""
        self._require_writable()
        self.refresh()
        commits = self._all_commits()
        stats = self.aggregate_target_stats()
        buffer = io.BytesIO()
        np.savez(buffer, mean=stats.mean, std=stats.std, frames=stats.frames, samples=stats.samples,
                 shards=stats.shards, layers=np.asarray(stats.layers, dtype=np.int64),
                 digest=np.asarray(self._stats_digest(commits)))
        self._loc.write_bytes_atomic(TARGET_STATS_FILE, buffer.getvalue(), fsync=self.fsync)
        return stats

    def leases(self) -> list[dict[str, Any]]:
        """Lease files present (who is writing what), each with a ``stale`` reason or None."""
        return active_leases(self.lease_dir) if self.lease_dir else []


class _Appender:
    """Appends rows to a zarr array along axis 0 in whole chunks (each chunk file is written
    exactly once), hashing the rows in order; the tail chunk is written by ``flush(final=True)``."""

    def __init__(self, array: zarr.Array, flush_rows: int) -> None:
        self.array = array
        chunk = array.chunks[0]
        self.flush_rows = max(chunk, flush_rows // chunk * chunk)
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0
        self.written_rows = 0
        self.hash = hashlib.sha256()

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.array.dtype)
        self.hash.update(rows.tobytes())
        self.pending.append(rows)
        self.pending_rows += len(rows)
        if self.pending_rows >= self.flush_rows:
            self.flush(final=False)

    def flush(self, final: bool) -> None:
        if not self.pending:
            return
        rows = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        chunk = self.array.chunks[0]
        n = len(rows) if final else len(rows) // chunk * chunk
        if n == 0:
            return
        start, end = self.written_rows, self.written_rows + n
        self.array.resize((end, *self.array.shape[1:]))
        self.array[start:end] = rows[:n]
        self.written_rows = end
        self.pending = [rows[n:]] if n < len(rows) else []
        self.pending_rows = len(rows) - n


class ShardWriter:
    """Writes one shard group; use via :meth:`FeatureStore.shard_writer` as a context manager.

    Samples are encoded, buffered and appended in whole chunks (each chunk file is written
    once); the tail chunks, the index arrays and finally the commit marker are written on clean
    exit. On an exception nothing is committed and the partial group is removed.
    """

    #: Samples per chunk of the int8 ``channel_scale`` array (8 x layers x width x 2 B).
    CHANNEL_SCALE_CHUNK = 8

    def __init__(
        self,
        store: FeatureStore,
        shard_name: str,
        lease: Lease,
        *,
        overwrite: bool = False,
        flush_frames: int | None = None,
    ) -> None:
        self.store = store
        self.shard_name = shard_name
        self.lease = lease
        self.overwrite = overwrite
        self._flush_frames = flush_frames or 8 * store.layout.chunk_frames
        self._group_rel = store._group_rel(shard_name)
        self._keys: list[str] = []
        self._key_set: set[str] = set()
        self._lengths: list[int] = []
        self._failures: dict[str, str] = {}
        self._group: zarr.Group | None = None
        self._appenders: dict[str, _Appender] = {}
        self._keep_alive: contextlib.AbstractContextManager[Any] | None = None
        self._stats = _Moments(store.fingerprint.num_layers, store.fingerprint.width)
        self._stats_samples = 0
        self.committed = False

    # -- lifecycle
    def __enter__(self) -> ShardWriter:
        try:
            self.lease.check()
            self._keep_alive = self.lease.keep_alive()
            self._keep_alive.__enter__()
            self._prepare_group()
        except BaseException:
            self._finish()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                try:
                    self.commit()
                except BaseException:
                    self._discard()
                    raise
            else:
                self._discard()
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._keep_alive is not None:
            self._keep_alive.__exit__(None, None, None)
            self._keep_alive = None
        self.lease.release()

    def _discard(self) -> None:
        # Only the lease holder may delete: after a LeaseLost the group belongs to someone else.
        if not self.committed and self.lease.is_held():
            self.store._loc.rmtree(self._group_rel)

    def _prepare_group(self) -> None:
        store, fp = self.store, self.store.fingerprint
        if store.commit_info(self.shard_name) is not None and not self.overwrite:
            raise ShardAlreadyCommitted(f"shard {self.shard_name!r} is already committed")
        # Whatever is there is an interrupted write (or an overwrite): start from nothing.
        store._loc.delete_file(f"{self._group_rel}/{COMMIT_MARKER}")
        store._loc.rmtree(self._group_rel)
        store.refresh()
        loc = store._loc
        self._group = zarr.open_group(
            loc.zarr_path(self._group_rel), mode="w", zarr_format=3,
            attributes={"shard_name": self.shard_name, "writer": self.lease.owner},
            storage_options=loc.storage_options or None,
        )
        chunk, layers, width = store.layout.chunk_frames, fp.num_layers, fp.width

        def growable(name: str, row_shape: tuple[int, ...], rows_per_chunk: int, dtype: Any,
                     dims: tuple[str, ...], flush_rows: int, compressors: Any) -> None:
            array = self._group.create_array(
                name, shape=(0, *row_shape), chunks=(rows_per_chunk, *row_shape), dtype=dtype,
                compressors=compressors, fill_value=0, dimension_names=dims,
                # zarr 3 skips writing all-fill chunks by default; verify counts chunk files.
                config={"write_empty_chunks": True},
            )
            self._appenders[name] = _Appender(array, flush_rows)

        growable("data", (layers, width), chunk, STORAGE_DTYPE[fp.codec],
                 ("frame", "layer", "width"), self._flush_frames, store._compressors(data=True))
        if fp.codec == "int8":
            growable("scale", (layers,), chunk, SCALE_DTYPE, ("frame", "layer"),
                     self._flush_frames, store._compressors(data=False))
            growable("channel_scale", (layers, width), self.CHANNEL_SCALE_CHUNK,
                     CHANNEL_SCALE_DTYPE, ("sample", "layer", "width"),
                     self.CHANNEL_SCALE_CHUNK, store._compressors(data=False))
        self._group["data"].attrs.update({"codec": fp.codec, "layers": fp.layers})

    # -- adding samples
    def add(self, key: str, features: np.ndarray, split: str | None = None) -> None:
        """Append one sample's features, float ``(layers, frames, width)`` in fingerprint layer
        order. Raises ValueError for a wrong shape, a repeated key, or non-finite values (record
        those with :meth:`add_failure` instead).

        ``split`` is the sample's dataset split (its shard metadata's ``split``; None counts as
        training): the stored values of :data:`TARGET_STATS_SPLIT` samples go into the group's
        target statistics."""
        self._check_open(key)
        fp = self.store.fingerprint
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 3 or x.shape[0] != fp.num_layers or x.shape[2] != fp.width or x.shape[1] < 1:
            raise ValueError(
                f"sample {key!r}: expected (layers={fp.num_layers}, frames>=1, width={fp.width}), "
                f"got {x.shape}"
            )
        if not np.isfinite(x).all():
            raise ValueError(f"sample {key!r}: features contain NaN or inf")
        encoded = encode(x, fp.codec)  # (layers, frames, width); stored frame-major below
        self._appenders["data"].append(encoded.values.transpose(1, 0, 2))
        if encoded.scale is not None and encoded.channel_scale is not None:
            self._appenders["scale"].append(encoded.scale.T)
            self._appenders["channel_scale"].append(encoded.channel_scale[None])
        if (split or TARGET_STATS_SPLIT) == TARGET_STATS_SPLIT:
            # Statistics of what readers get back (decoded), not of the float32 input.
            self._stats.add_frames(decode(encoded.values, encoded.scale, fp.codec, encoded.channel_scale))
            self._stats_samples += 1
        self._keys.append(key)
        self._key_set.add(key)
        self._lengths.append(x.shape[1])

    def add_failure(self, key: str, reason: str) -> None:
        """Record that sample ``key`` has no features and why (kept in the commit marker, so a
        rerun does not retry the shard for it)."""
        self._check_open(key)
        self._failures[key] = str(reason)

    def _check_open(self, key: str) -> None:
        if self._group is None or self.committed:
            raise RuntimeError("use the writer inside its `with` block, before it commits")
        if not isinstance(key, str) or not key:
            raise ValueError(f"sample keys must be non-empty strings, got {key!r}")
        if key in self._key_set or key in self._failures:
            raise ValueError(f"sample {key!r} was already added to shard {self.shard_name!r}")
        if self.lease.lost:
            raise LeaseLost(f"lease on shard {self.shard_name!r} was taken over")

    # -- commit
    def commit(self) -> ShardCommit:
        """Write the tails, the index arrays and the marker. Called on clean exit of the block."""
        if self.committed:
            raise RuntimeError(f"shard {self.shard_name!r} is already committed")
        assert self._group is not None
        for appender in self._appenders.values():
            appender.flush(final=True)
        fp, store = self.store.fingerprint, self.store
        num_samples = len(self._keys)
        lengths = np.asarray(self._lengths, dtype=np.int64)
        offsets = np.zeros(num_samples + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        index_compressors = store._compressors(data=False)
        for name, values in (("offsets", offsets), ("lengths", lengths)):
            array = self._group.create_array(
                name, shape=values.shape, chunks=(max(len(values), 1),), dtype=np.int64,
                compressors=index_compressors, fill_value=0,
                config={"write_empty_chunks": True},  # offsets [0] is all fill value
            )
            if len(values):
                array[:] = values
        keys_array = self._group.create_array(
            "keys", shape=(num_samples,), chunks=(max(num_samples, 1),), dtype=str,
            compressors=index_compressors, config={"write_empty_chunks": True},
        )
        if num_samples:
            keys_array[:] = np.asarray(self._keys, dtype=object)
        stats_arrays = {"stats_sum": self._stats.sum, "stats_m2": self._stats.m2}
        for name, values in stats_arrays.items():
            array = self._group.create_array(
                name, shape=values.shape, chunks=values.shape, dtype=np.float64,
                compressors=index_compressors, fill_value=0, dimension_names=("layer", "width"),
                config={"write_empty_chunks": True},
            )
            array[:] = values
        checksums = {name: a.hash.hexdigest() for name, a in self._appenders.items()}
        checksums.update(
            offsets=_array_checksum(offsets),
            lengths=_array_checksum(lengths),
            keys=_keys_checksum(self._keys),
            **{name: _array_checksum(values.astype(np.float64)) for name, values in stats_arrays.items()},
        )
        commit = ShardCommit(
            shard_name=self.shard_name,
            num_samples=num_samples,
            num_frames=int(offsets[-1]),
            num_layers=fp.num_layers,
            width=fp.width,
            codec=fp.codec,
            keys=self._keys,
            lengths=self._lengths,
            checksums=checksums,
            failures=self._failures,
            stats_frames=self._stats.count,
            stats_samples=self._stats_samples,
            owner=self.lease.owner,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            committed_at=time.time(),
        )
        if store.fsync:
            store._loc.fsync_tree(self._group_rel)
        # Never commit a group that another worker may have started rewriting.
        self.lease.check()
        store._loc.write_text_atomic(
            f"{self._group_rel}/{COMMIT_MARKER}", commit.model_dump_json(), fsync=store.fsync
        )
        self.committed = True
        store.refresh()
        return commit

    @property
    def num_samples(self) -> int:
        return len(self._keys)

    @property
    def num_frames(self) -> int:
        """Frames added so far (written plus buffered)."""
        data = self._appenders["data"]
        return data.written_rows + data.pending_rows

    @property
    def num_pending_frames(self) -> int:
        """Frames buffered in memory, not yet written to chunks."""
        return self._appenders["data"].pending_rows
