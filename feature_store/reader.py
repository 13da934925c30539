"""Reading a feature store: samples by key from its committed shard groups.

A :class:`StoreReader` is a read view as of one scan of the commit markers (the groups it was
given); :class:`feature_store.store.FeatureStore` builds one lazily and drops it on ``refresh()``,
and its ``read`` / ``iter_shard`` / ``keys`` ... are this class's. Each shard group's arrays are
opened once and kept.

    >>> from feature_store import FeatureStore
    >>> store = FeatureStore.open("/data/features.zarr", fingerprint)  # doctest: +SKIP
    >>> store.reader.read("utt-000017").shape  # (layers, frames, width), float32  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import zarr

from feature_store.codecs import decode
from feature_store.fingerprint import StoreFingerprint
from feature_store.schema import ShardCommit

if TYPE_CHECKING:
    import torch


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


class StoreReader:
    """Samples of the committed shard groups ``commits`` (shard name -> marker), decoded to float32.

    Args:
        commits: the groups this view reads, as one scan of the markers found them.
        fingerprint: the store's; gives the stored layers and the codec.
        chunk_frames: the store's chunk length (the block size of :meth:`iter_shard`).
        open_group: opens a shard group's zarr group, read-only.
        late_commit: the marker of a shard committed after the scan (read by :meth:`iter_shard` when
            asked for it by name), or None.
        where: the store's address, for error messages.
    """

    def __init__(
        self,
        commits: dict[str, ShardCommit],
        fingerprint: StoreFingerprint,
        chunk_frames: int,
        open_group: Callable[[str], zarr.Group],
        late_commit: Callable[[str], ShardCommit | None],
        where: str,
    ) -> None:
        self.commits = commits
        self.fingerprint = fingerprint
        self.chunk_frames = chunk_frames
        self._open_group = open_group
        self._late_commit = late_commit
        self._where = where
        self._index: dict[str, tuple[str, int]] | None = None
        self._handles: dict[str, _ShardHandle] = {}

    # ------------------------------------------------------------------ the index (markers only)
    def _index_map(self) -> dict[str, tuple[str, int]]:
        if self._index is None:
            index: dict[str, tuple[str, int]] = {}
            for shard_name, commit in self.commits.items():
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
            raise KeyError(f"sample {key!r} is not in any committed shard of {self._where}") from None

    def lengths(self) -> dict[str, int]:
        """Frames per sample key (from the markers: no array reads), e.g. for length bucketing."""
        return {
            key: length
            for commit in self.commits.values()
            for key, length in zip(commit.keys, commit.lengths)
        }

    def failures(self) -> dict[str, str]:
        """Sample key -> reason, for samples that committed shards recorded as failed."""
        return {
            key: reason
            for commit in self.commits.values()
            for key, reason in commit.failures.items()
        }

    # ------------------------------------------------------------------ decoding
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
            commit = self.commits.get(shard_name) or self._late_commit(shard_name)
            if commit is None:
                raise KeyError(f"shard {shard_name!r} is not committed in {self._where}")
            group = self._open_group(shard_name)
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

    # ------------------------------------------------------------------ samples
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
        block = block_frames or 8 * self.chunk_frames
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
