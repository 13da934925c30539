"""Zarr feature store of per-layer teacher (Whisper) hidden states for AuRA distillation.

The precompute job writes one zarr group per input shard, guarded by a lease and committed by
a marker written last; training reads samples by key. See :mod:`feature_store.store` for the
layout and usage (opening), :mod:`feature_store.reader` for reading samples by key,
:mod:`feature_store.writer` for writing a shard group, :mod:`feature_store.schema` for the names
and records on disk, :mod:`feature_store.location` for local and fsspec storage, :mod:`feature_store.stats` for the target statistics,
:mod:`feature_store.fingerprint` for what must match between writer and reader,
:mod:`feature_store.codecs` for fp16 / bf16 / int8 storage, :mod:`feature_store.lease` for who
writes what, and :mod:`feature_store.verify` / :mod:`feature_store.status` for operations.
"""

from feature_store.codecs import (
    CODECS,
    EncodedFeatures,
    bytes_per_frame_per_width,
    cosine_fidelity,
    decode,
    encode,
)
from feature_store.fingerprint import (
    FORMAT_VERSION,
    FingerprintMismatch,
    MelSettings,
    StoreFingerprint,
    compare,
)
from feature_store.lease import Lease, LeaseLost
from feature_store.reader import StoreReader
from feature_store.schema import ShardAlreadyCommitted, ShardBusy, ShardCommit, StoreLayout
from feature_store.stats import TargetStats
from feature_store.status import format_status, status
from feature_store.store import FeatureStore
from feature_store.verify import ShardVerification, VerifyReport, verify
from feature_store.writer import ShardWriter

__all__ = [
    "CODECS",
    "FORMAT_VERSION",
    "EncodedFeatures",
    "FeatureStore",
    "FingerprintMismatch",
    "Lease",
    "LeaseLost",
    "MelSettings",
    "ShardAlreadyCommitted",
    "ShardBusy",
    "ShardCommit",
    "ShardVerification",
    "ShardWriter",
    "StoreFingerprint",
    "StoreLayout",
    "StoreReader",
    "TargetStats",
    "VerifyReport",
    "bytes_per_frame_per_width",
    "compare",
    "cosine_fidelity",
    "decode",
    "encode",
    "format_status",
    "status",
    "verify",
]
