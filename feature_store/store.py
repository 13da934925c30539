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
import urllib.parse
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from feature_store.fingerprint import FORMAT_VERSION, FingerprintMismatch, StoreFingerprint, check
from feature_store.lease import DEFAULT_TTL_S, Lease, active_leases, try_claim
from feature_store.location import StoreLocation, create_root_exclusively
from feature_store.reader import StoreReader
from feature_store.schema import (
    COMMIT_MARKER,
    DEFAULT_CHUNK_FRAMES,
    LEASES_DIR,
    LEGACY_FINGERPRINT_FIELDS,
    ROOT_ATTR,
    SHARDS_GROUP,
    Compression,
    ShardBusy,
    ShardCommit,
    StoreLayout,
    default_compression,
    default_owner,
    shard_dir_name,
)
from feature_store.stats import TARGET_STATS_FILE, FrameMoments, TargetStats, stats_from_moments
from feature_store.writer import ShardWriter

if TYPE_CHECKING:
    import torch


class FeatureStore:
    """A zarr feature store; see the module docstring for the layout and usage.

    Open with :meth:`open`. Reads see committed shard groups only, through :attr:`reader` (a
    :class:`~feature_store.reader.StoreReader`); writes go through :meth:`shard_writer`
    (a :class:`~feature_store.writer.ShardWriter`), one writer per shard, guarded by a lease
    (:meth:`try_claim`).
    """

    def __init__(
        self,
        loc: StoreLocation,
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
        self._reader: StoreReader | None = None

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
        loc = StoreLocation(path, storage_options)
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
            create_root_exclusively(loc, attrs)

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

    @property
    def location(self) -> StoreLocation:
        """Where the store lives (local directory or fsspec URL), with the file operations it needs."""
        return self._loc

    def __repr__(self) -> str:
        return (
            f"FeatureStore({self.path!r}, teacher={self.fingerprint.teacher!r}, "
            f"layers={self.fingerprint.layers}, codec={self.fingerprint.codec!r})"
        )

    # ------------------------------------------------------------------ shard groups
    def group_path(self, shard_name: str) -> str:
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
        self._reader = None

    def _require_writable(self) -> None:
        if self.read_only:
            raise PermissionError(f"feature store {self.path} was opened read-only (mode='r')")

    def uncommit(self, shard_name: str) -> None:
        """Remove the shard's commit marker, so that the next precompute redoes the shard
        (e.g. after :func:`feature_store.verify.verify` found it damaged)."""
        self._require_writable()
        self._loc.delete_file(f"{self.group_path(shard_name)}/{COMMIT_MARKER}")
        self.refresh()

    def delete_shard(self, shard_name: str) -> None:
        """Remove the shard group entirely (marker first, so no reader sees a partial group)."""
        self._require_writable()
        self.uncommit(shard_name)
        self._loc.rmtree(self.group_path(shard_name))

    def bytes_on_disk(self, shard_name: str | None = None) -> int:
        """Total size of the files of one shard group, or of everything under the store root
        (data, metadata, markers, leases, uncommitted groups)."""
        return self._loc.du(self.group_path(shard_name) if shard_name is not None else "")

    def open_shard_group(self, shard_name: str) -> zarr.Group:
        """The shard's zarr group, read-only, committed or not (for inspection and verify)."""
        return zarr.open_group(
            self._loc.zarr_path(self.group_path(shard_name)), mode="r", zarr_format=3,
            storage_options=self._loc.storage_options or None,
        )

    def read_commit_marker_text(self, shard_name: str) -> str | None:
        """Raw text of the shard's commit marker (None when absent), e.g. to report damage."""
        return self._loc.read_text(f"{self.group_path(shard_name)}/{COMMIT_MARKER}")

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

    def compressors(self, data: bool) -> list[Any] | None:
        codecs: list[Any] = []
        if not data or self.layout.compression == "zstd":
            codecs.append(ZstdCodec(level=1))
        if self.layout.chunk_checksums:
            codecs.append(Crc32cCodec())  # last, so it covers the bytes as stored
        return codecs or None

    # ------------------------------------------------------------------ reading
    @property
    def reader(self) -> StoreReader:
        """The read view of the committed groups as last scanned (:class:`~feature_store.reader.StoreReader`;
        :meth:`refresh` rescans)."""
        if self._reader is None:
            self._reader = StoreReader(self._all_commits(), self.fingerprint, self.layout.chunk_frames,
                                       open_group=self.open_shard_group, late_commit=self.commit_info,
                                       where=self.path)
        return self._reader

    def keys(self) -> list[str]:
        """Keys of all samples in committed shards, shard by shard in stored order."""
        return self.reader.keys()

    def __contains__(self, key: object) -> bool:
        return key in self.reader

    def __len__(self) -> int:
        return len(self.reader)

    def locate(self, key: str) -> tuple[str, int]:
        """``(shard_name, index within shard)`` of a sample key."""
        return self.reader.locate(key)

    def lengths(self) -> dict[str, int]:
        """Frames per sample key (from the markers: no array reads), e.g. for length bucketing."""
        return self.reader.lengths()

    def failures(self) -> dict[str, str]:
        """Sample key -> reason, for samples that committed shards recorded as failed."""
        return self.reader.failures()

    def read(self, key: str, layers: Sequence[int] | None = None) -> np.ndarray:
        """Teacher features of one sample: float32 ``(layers, frames, width)`` (:meth:`StoreReader.read`)."""
        return self.reader.read(key, layers)

    def read_torch(self, key: str, layers: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`read` as a CPU float32 torch tensor (no copy)."""
        return self.reader.read_torch(key, layers)

    def iter_shard(
        self, shard_name: str, layers: Sequence[int] | None = None, block_frames: int | None = None
    ) -> Iterator[tuple[str, np.ndarray]]:
        """``(key, float32 (layers, frames, width))`` for each sample of a committed shard, in stored order
        (:meth:`StoreReader.iter_shard`)."""
        return self.reader.iter_shard(shard_name, layers, block_frames)

    def iter_shard_torch(
        self, shard_name: str, layers: Sequence[int] | None = None
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """:meth:`iter_shard` yielding CPU float32 torch tensors."""
        return self.reader.iter_shard_torch(shard_name, layers)

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
        moments = FrameMoments(fp.num_layers, fp.width)
        samples = 0
        for name, commit in sorted(commits.items()):
            if not commit.stats_frames:
                continue
            group = self.open_shard_group(name)
            moments.add(commit.stats_frames, group["stats_sum"][:], group["stats_m2"][:])
            samples += commit.stats_samples or 0
        return stats_from_moments(list(fp.layers), moments, samples, len(commits))

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
                    current = (str(f["digest"]) == self._stats_digest(commits)
                               and list(f["layers"]) == list(self.fingerprint.layers))
                if current:
                    return TargetStats.from_npz(payload)
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
