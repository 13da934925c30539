"""Writing one shard group: samples encoded and appended in whole chunks, then the index arrays, the
group's target moments and, last, the commit marker (:class:`ShardWriter`, opened by
:meth:`feature_store.store.FeatureStore.shard_writer` under the shard's lease)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from typing import Any, Protocol

import numpy as np
import zarr

from feature_store.codecs import CHANNEL_SCALE_DTYPE, SCALE_DTYPE, STORAGE_DTYPE, decode, encode
from feature_store.fingerprint import StoreFingerprint
from feature_store.lease import Lease, LeaseLost


from feature_store.location import StoreLocation
from feature_store.schema import (
    COMMIT_MARKER,
    ShardAlreadyCommitted,
    ShardCommit,
    StoreLayout,
    array_checksum,
    keys_checksum,
)
from feature_store.stats import TARGET_STATS_SPLIT, FrameMoments


class WritableStore(Protocol):
    """What a :class:`ShardWriter` needs of the store it writes into (a :class:`~feature_store.store.FeatureStore`
    opened with ``mode="a"``)."""

    layout: StoreLayout
    fingerprint: StoreFingerprint
    fsync: bool

    @property
    def location(self) -> StoreLocation: ...

    def group_path(self, shard_name: str) -> str: ...

    def compressors(self, data: bool) -> list[Any] | None: ...

    def commit_info(self, shard_name: str) -> ShardCommit | None: ...

    def refresh(self) -> None: ...


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
        store: WritableStore,
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
        self._group_rel = store.group_path(shard_name)
        self._keys: list[str] = []
        self._key_set: set[str] = set()
        self._lengths: list[int] = []
        self._failures: dict[str, str] = {}
        self._group: zarr.Group | None = None
        self._appenders: dict[str, _Appender] = {}
        self._keep_alive: contextlib.AbstractContextManager[Any] | None = None
        self._stats = FrameMoments(store.fingerprint.num_layers, store.fingerprint.width)
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
            self.store.location.rmtree(self._group_rel)

    def _prepare_group(self) -> None:
        store, fp = self.store, self.store.fingerprint
        if store.commit_info(self.shard_name) is not None and not self.overwrite:
            raise ShardAlreadyCommitted(f"shard {self.shard_name!r} is already committed")
        # Whatever is there is an interrupted write (or an overwrite): start from nothing.
        store.location.delete_file(f"{self._group_rel}/{COMMIT_MARKER}")
        store.location.rmtree(self._group_rel)
        store.refresh()
        loc = store.location
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
                 ("frame", "layer", "width"), self._flush_frames, store.compressors(data=True))
        if fp.codec == "int8":
            growable("scale", (layers,), chunk, SCALE_DTYPE, ("frame", "layer"),
                     self._flush_frames, store.compressors(data=False))
            growable("channel_scale", (layers, width), self.CHANNEL_SCALE_CHUNK,
                     CHANNEL_SCALE_DTYPE, ("sample", "layer", "width"),
                     self.CHANNEL_SCALE_CHUNK, store.compressors(data=False))
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
        index_compressors = store.compressors(data=False)
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
            offsets=array_checksum(offsets),
            lengths=array_checksum(lengths),
            keys=keys_checksum(self._keys),
            **{name: array_checksum(values.astype(np.float64)) for name, values in stats_arrays.items()},
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
            store.location.fsync_tree(self._group_rel)
        # Never commit a group that another worker may have started rewriting.
        self.lease.check()
        store.location.write_text_atomic(
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
