"""Webdataset shards (16 kHz mono FLAC + JSON per sample) and the parquet manifest beside them.

A shards directory holds ``shard-000000.tar``, ``shard-000001.tar``, ... (immutable once written),
``manifest.parquet`` (one row per sample) and ``rejects.jsonl`` (the last ingest's rejected inputs).
Shards are written to a temporary name and renamed, so a killed writer never leaves a shard that
looks complete; the manifest is rewritten atomically after each shard.

Usage::

    >>> from pipeline.data.shards import ShardSet
    >>> shards = ShardSet("runs/demo/shards")
    >>> shards.shard_names()                                   # doctest: +SKIP
    ['shard-000000', 'shard-000001']
    >>> for sample in shards.iter_shard("shard-000000"):       # doctest: +SKIP
    ...     sample.key, sample.audio.shape, sample.meta["text"]
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from pipeline.data.audio import from_flac_bytes
from pipeline.fs import atomic_write_bytes, remove_stale_temp_files

SHARD_PATTERN = re.compile(r"^shard-(\d{6})$")
# Member names inside a shard must be "<key>.<ext>" with a plain key: never a path.
MEMBER_PATTERN = re.compile(r"^([A-Za-z0-9_-]{1,200})\.(flac|json)$")

MANIFEST_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("index", pa.int32()),
        ("source", pa.string()),
        ("sha256", pa.string()),
        ("duration_s", pa.float64()),
        ("num_samples", pa.int64()),
        ("sample_rate", pa.int32()),
        ("source_sample_rate", pa.int32()),
        ("source_channels", pa.int32()),
        ("text", pa.string()),
        ("task", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("split", pa.string()),
        ("speaker", pa.string()),
        ("meta", pa.string()),
    ]
)
MANIFEST_COLUMNS = MANIFEST_SCHEMA.names


class ShardFormatError(ValueError):
    """A shard holds something other than what this pipeline writes (or was tampered with)."""


@dataclass(frozen=True)
class ShardSample:
    key: str
    audio: np.ndarray  # float32 mono
    sample_rate: int
    meta: dict[str, Any]


def shard_name(index: int) -> str:
    return f"shard-{index:06d}"


def shard_index(name: str) -> int:
    match = SHARD_PATTERN.match(name)
    if not match:
        raise ShardFormatError(f"not a shard name: {name!r}")
    return int(match.group(1))


class ShardSet:
    """A directory of webdataset shards plus ``manifest.parquet``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def rejects_path(self) -> Path:
        return self.root / "rejects.jsonl"

    def shard_path(self, name: str) -> Path:
        shard_index(name)  # validates the name
        return self.root / f"{name}.tar"

    # ----------------------------------------------------------------------------- manifest
    def read_manifest(self) -> pa.Table:
        """All manifest rows (an empty table when nothing was ingested yet)."""
        if not self.manifest_path.exists():
            return MANIFEST_SCHEMA.empty_table()
        return pq.read_table(self.manifest_path, schema=MANIFEST_SCHEMA)

    def write_manifest(self, table: pa.Table) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        table = table.cast(MANIFEST_SCHEMA)
        atomic_write_bytes(self.manifest_path, lambda f: pq.write_table(table, f))

    def manifest_rows(self) -> list[dict[str, Any]]:
        return self.read_manifest().to_pylist()

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete the half-written files of writers that were killed (their pid is gone on this host).

        Files of live writers, and of writers on other hosts (a shared filesystem), are left alone.
        """
        return remove_stale_temp_files(self.root)

    def shard_names(self) -> list[str]:
        """Shards listed in the manifest, in order (a shard file not in the manifest is unfinished)."""
        names = set(self.read_manifest().column("shard").to_pylist())
        return sorted(names, key=shard_index)

    def next_shard_index(self) -> int:
        names = self.shard_names()
        return shard_index(names[-1]) + 1 if names else 0

    # ----------------------------------------------------------------------------- shards
    def write_shard(self, name: str, samples: list[tuple[str, bytes, dict[str, Any]]]) -> Path:
        """Write ``(key, flac_bytes, meta)`` samples as one tar, atomically and deterministically."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.shard_path(name)

        def write(f):
            # mtime fixed so the same input gives byte-identical shards.
            with wds.TarWriter(f, mtime=0.0, encoder=False) as sink:
                for key, flac, meta in samples:
                    if not MEMBER_PATTERN.match(f"{key}.flac"):
                        raise ShardFormatError(f"sample key {key!r} is not a plain key")
                    meta_bytes = json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()
                    sink.write({"__key__": key, "flac": flac, "json": meta_bytes})

        atomic_write_bytes(path, write)
        return path

    def iter_shard(self, name: str) -> Iterator[ShardSample]:
        """Yield the samples of one shard, validating every member name (never used as a path)."""
        yield from iter_shard_file(self.shard_path(name))


def iter_shard_file(path: str | Path) -> Iterator[ShardSample]:
    """Read a shard tar without extracting it; member names must be ``<key>.flac|json``."""
    pending: dict[str, dict[str, bytes]] = {}
    order: list[str] = []
    with tarfile.open(path, mode="r:*") as tar:
        for member in tar:
            match = MEMBER_PATTERN.match(member.name)
            if not member.isfile() or not match:
                raise ShardFormatError(
                    f"{path}: unexpected tar member {member.name!r} (only regular <key>.flac/<key>.json files are allowed)"
                )
            key, ext = match.groups()
            handle = tar.extractfile(member)
            assert handle is not None
            if key not in pending:
                pending[key] = {}
                order.append(key)
            pending[key][ext] = handle.read()
    for key in order:
        parts = pending[key]
        if set(parts) != {"flac", "json"}:
            raise ShardFormatError(f"{path}: sample {key!r} lacks {sorted({'flac', 'json'} - set(parts))}")
        audio, rate = from_flac_bytes(parts["flac"])
        yield ShardSample(key=key, audio=audio, sample_rate=rate, meta=json.loads(parts["json"]))
