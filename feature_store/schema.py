"""What a feature store holds on disk, by name: the root and group names, the commit marker's record, the
chunk layout, the checksums a commit carries, and the errors of writing a shard. The layout itself is
drawn in :mod:`feature_store.store`."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import urllib.parse
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from feature_store.fingerprint import FORMAT_VERSION


ROOT_ATTR = "aura_feature_store"
SHARDS_GROUP = "shards"
LEASES_DIR = "_leases"
COMMIT_MARKER = "_COMMITTED.json"
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


def keys_checksum(keys: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(keys)).encode()).hexdigest()


def array_checksum(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()
