"""What a feature store holds and what is left to compute, as one dict (and a printable table).

    >>> from feature_store import FeatureStore, status, format_status
    >>> store = FeatureStore.open("/data/features.zarr")  # doctest: +SKIP
    >>> st = status(store, manifest_shards=["shard-000000", "shard-000001", "shard-000002"])  # doctest: +SKIP
    >>> st["pending_shards"]  # what the next precompute run will compute  # doctest: +SKIP
    ['shard-000002']
    >>> st["audio_hours"], st["bytes_per_audio_hour_per_layer"]  # ~0.47e9 for fp16 Whisper  # doctest: +SKIP
    >>> print(format_status(st))  # doctest: +SKIP

Sizes are file sizes (what a copy or an object store bills), not allocated blocks.
"""

from __future__ import annotations

import time
from typing import Any

from feature_store.store import FeatureStore


def status(store: FeatureStore, manifest_shards: list[str] | None = None) -> dict[str, Any]:
    """Counts, sizes and progress of ``store``.

    ``manifest_shards`` are the shard names a complete store should hold; with it, ``pending``
    lists those not committed yet (what the next precompute run will compute) and ``unexpected``
    the committed shards it does not name. Keys of the result:

    - ``shards_committed``, ``shards_uncommitted`` (groups on disk without marker: interrupted
      writes or writes in progress), ``shards_pending``, ``pending_shards``,
      ``shards_unexpected`` (the last three None without a manifest)
    - ``samples``, ``failures`` (samples recorded as failed), ``frames``, ``audio_hours``
      (frames / frame_rate_hz / 3600)
    - ``bytes_on_disk`` (whole store), ``bytes_committed`` (committed groups),
      ``bytes_per_audio_hour_per_layer`` and ``bytes_per_frame_per_layer_per_width`` (from the
      committed groups; None while empty)
    - ``leases``: the shards being written now (owner, host, pid, heartbeat age, stale reason)
    """
    fp = store.fingerprint
    commits = store.commits()
    committed = set(commits)
    on_disk = store.shard_groups()
    samples = sum(c.num_samples for c in commits.values())
    frames = sum(c.num_frames for c in commits.values())
    failures = sum(len(c.failures) for c in commits.values())
    audio_hours = frames / fp.frame_rate_hz / 3600.0
    bytes_committed = sum(store.bytes_on_disk(name) for name in committed)

    pending: list[str] | None = None
    unexpected: list[str] | None = None
    if manifest_shards is not None:
        expected = set(manifest_shards)
        pending = sorted(expected - committed)
        unexpected = sorted(committed - expected)

    now = time.time()
    leases = [
        {
            "shard": lease.get("shard_name"),
            "owner": lease.get("owner"),
            "hostname": lease.get("hostname"),
            "pid": lease.get("pid"),
            "heartbeat_age_s": round(now - float(lease.get("heartbeat", now)), 1),
            "stale": lease.get("stale"),
        }
        for lease in store.leases()
    ]
    values = frames * fp.num_layers * fp.width
    return {
        "path": store.path,
        "teacher": fp.teacher,
        "layers": list(fp.layers),
        "codec": fp.codec,
        "compression": store.layout.compression,
        "width": fp.width,
        "frame_rate_hz": fp.frame_rate_hz,
        "shards_committed": len(committed),
        "shards_uncommitted": len(on_disk - committed),
        "shards_pending": None if pending is None else len(pending),
        "pending_shards": pending,
        "shards_unexpected": None if unexpected is None else len(unexpected),
        "samples": samples,
        "failures": failures,
        "frames": frames,
        "audio_hours": audio_hours,
        "bytes_on_disk": store.bytes_on_disk(),
        "bytes_committed": bytes_committed,
        "bytes_per_audio_hour_per_layer": (
            bytes_committed / audio_hours / fp.num_layers if audio_hours > 0 else None
        ),
        "bytes_per_frame_per_layer_per_width": bytes_committed / values if values else None,
        "leases": leases,
    }


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TB"


def format_status(st: dict[str, Any]) -> str:
    """A short human-readable rendering of :func:`status`'s result."""
    pending = "-" if st["shards_pending"] is None else str(st["shards_pending"])
    lines = [
        f"feature store {st['path']}",
        f"  teacher {st['teacher']}  layers {st['layers']}  codec {st['codec']} "
        f"({st['compression']})  width {st['width']}  {st['frame_rate_hz']} frames/s",
        f"  shards: {st['shards_committed']} committed, {pending} pending, "
        f"{st['shards_uncommitted']} uncommitted on disk",
        f"  samples {st['samples']} ({st['failures']} failed)  frames {st['frames']}  "
        f"audio {st['audio_hours']:.3f} h",
        f"  size {_size(st['bytes_on_disk'])} on disk, "
        f"{_size(st['bytes_per_audio_hour_per_layer'])} per audio-hour per layer",
    ]
    lines += [
        f"  writing {lease['shard']}: {lease['owner']} on {lease['hostname']} pid {lease['pid']}, "
        f"heartbeat {lease['heartbeat_age_s']}s ago{' (stale: ' + lease['stale'] + ')' if lease['stale'] else ''}"
        for lease in st["leases"]
    ]
    return "\n".join(lines)
