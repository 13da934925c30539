"""``aura ingest``: audio files with transcripts -> webdataset shards + parquet manifest.

Inputs are either a directory (audio files ``*.wav|flac|mp3|ogg`` with a sidecar ``<stem>.txt``
transcript) or a manifest file (``.jsonl`` or ``.parquet``) whose rows have ``audio`` (a path,
relative to the manifest's folder) and ``text``, plus optional ``key``, ``task``, ``question``,
``answer``, ``split``, ``speaker`` and any other fields (kept as JSON metadata).

Ingest is incremental: inputs whose key is already in the manifest with the same content are
skipped; new inputs go to new shards only (existing shards are never rewritten), so re-running on
the same input writes nothing. Every bad input gets a row in ``rejects.jsonl`` (file, key, reason)
and the rest goes on.

Usage::

    >>> from pipeline.data.ingest import ingest
    >>> summary = ingest("corpus/manifest.jsonl", "runs/demo/shards", IngestConfig())  # doctest: +SKIP
    >>> summary.new_shards, summary.rejected  # doctest: +SKIP
    (['shard-000000', ...], 0)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.config import IngestConfig
from pipeline.data.audio import AUDIO_EXTENSIONS, AudioRejected, load_checked, to_flac_bytes
from pipeline.data.shards import MANIFEST_COLUMNS, ShardSet, shard_name
from pipeline.fs import atomic_write_text
from pipeline.workers import worker_pool

log = logging.getLogger(__name__)

KNOWN_FIELDS = ("text", "task", "question", "answer", "split", "speaker")
MAX_KEY_LENGTH = 120


def display_path(path: str | Path) -> str:
    """A file name safe to print and store, even when it is not valid UTF-8."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def make_key(raw: str) -> str:
    """A webdataset-safe key (letters, digits, ``_``, ``-``) derived from a path or a given key.

    Dots, slashes and anything else become ``_``; very long names are shortened with a hash suffix
    so that two long names stay distinct.

    >>> make_key("spk1/utt.001")
    'spk1_utt_001'
    """
    key = re.sub(r"[^A-Za-z0-9_-]", "_", raw).strip("_") or "sample"
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        key = f"{key[: MAX_KEY_LENGTH - 13]}-{digest}"
    return key


@dataclass
class InputItem:
    """One input utterance before decoding."""

    key: str
    source: Path
    fields: dict[str, Any]


@dataclass
class Reject:
    file: str
    key: str | None
    reason: str


@dataclass
class IngestSummary:
    """What one ingest run did."""

    inputs: int = 0
    skipped_existing: int = 0
    ingested: int = 0
    rejects: list[Reject] = field(default_factory=list)
    new_shards: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    def describe(self) -> str:
        lines = [
            f"ingest: {self.inputs} inputs, {self.ingested} ingested into {len(self.new_shards)} new shard(s), "
            f"{self.skipped_existing} already ingested, {self.rejected} rejected, {self.audio_seconds:.1f} s of new audio"
        ]
        for r in self.rejects[:20]:
            lines.append(f"  rejected {r.file}" + (f" [key {r.key}]" if r.key else "") + f": {r.reason}")
        if self.rejected > 20:
            lines.append(f"  ... {self.rejected - 20} more in rejects.jsonl")
        return "\n".join(lines)


# --------------------------------------------------------------------------------- discovery
def _read_manifest_rows(path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    if path.suffix == ".jsonl":
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                    if not isinstance(row, dict):
                        raise ValueError("a line must be a JSON object")
                except (UnicodeDecodeError, ValueError) as exc:
                    rejects.append(Reject(f"{display_path(path)}:{lineno}", None, f"malformed JSONL line ({exc})"))
                    continue
                rows.append(row)
    elif path.suffix == ".parquet":
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{display_path(path)}: not a readable parquet manifest ({exc})") from None
    else:
        raise ValueError(f"{display_path(path)}: manifest must be .jsonl or .parquet")
    return rows, rejects


def discover_inputs(source: str | Path, cfg: IngestConfig) -> tuple[list[InputItem], list[Reject]]:
    """List the input utterances of a directory or a manifest file, with rejects for broken rows."""
    source = Path(source)
    items: list[InputItem] = []
    rejects: list[Reject] = []
    if source.is_dir():
        # os.walk on a bytes-free str path keeps undecodable names as surrogates; sort for determinism.
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.suffix.lower() not in AUDIO_EXTENSIONS:
                    continue
                rel = path.relative_to(source).with_suffix("")
                fields: dict[str, Any] = {}
                sidecar = path.with_suffix(".txt")
                if sidecar.exists():
                    try:
                        fields["text"] = sidecar.read_text(encoding="utf-8").strip()
                    except UnicodeDecodeError:
                        rejects.append(Reject(display_path(path), make_key(str(rel)), "transcript is not UTF-8"))
                        continue
                items.append(InputItem(make_key(str(rel)), path, fields))
    elif source.is_file():
        rows, rejects = _read_manifest_rows(source)
        for n, row in enumerate(rows):
            audio = row.get("audio")
            if not isinstance(audio, str) or not audio:
                rejects.append(Reject(f"{display_path(source)}#{n}", None, "row has no 'audio' path"))
                continue
            path = Path(audio) if Path(audio).is_absolute() else source.parent / audio
            raw_key = row.get("key") if isinstance(row.get("key"), str) else str(Path(audio).with_suffix(""))
            fields = {k: v for k, v in row.items() if k not in ("audio", "key")}
            items.append(InputItem(make_key(raw_key), path, fields))
    else:
        raise FileNotFoundError(f"ingest input not found: {display_path(source)}")
    return items, rejects


# --------------------------------------------------------------------------------- decoding
def _prepare(
    item: InputItem, cfg: IngestConfig, known_sha256: str | None
) -> tuple[InputItem, dict[str, Any] | None, bytes | None, str | None]:
    """Read, hash, check and FLAC-encode one input (runs in a worker process).

    An input already ingested with the same bytes is not decoded again.
    """
    try:
        data = item.source.read_bytes()
    except FileNotFoundError:
        return item, None, None, "file not found"
    except OSError as exc:
        return item, None, None, f"cannot read file ({exc.strerror or exc})"
    sha = hashlib.sha256(data).hexdigest()
    if known_sha256 is not None:
        return item, {"sha256": sha}, None, None
    try:
        audio = load_checked(data, cfg)
    except AudioRejected as exc:
        return item, {"sha256": sha}, None, exc.reason
    info = {
        "sha256": sha,
        "duration_s": audio.duration_s,
        "num_samples": len(audio.samples),
        "sample_rate": audio.sample_rate,
        "source_sample_rate": audio.source_sample_rate,
        "source_channels": audio.source_channels,
    }
    return item, info, to_flac_bytes(audio.samples, audio.sample_rate), None


def _manifest_row(item: InputItem, info: dict[str, Any], shard: str, index: int) -> dict[str, Any]:
    extra = {k: v for k, v in item.fields.items() if k not in KNOWN_FIELDS}
    row: dict[str, Any] = {
        "key": item.key,
        "shard": shard,
        "index": index,
        "source": display_path(item.source),
        **info,
        "meta": json.dumps(extra, sort_keys=True, default=str),
    }
    for name in KNOWN_FIELDS:
        value = item.fields.get(name)
        row[name] = None if value is None else str(value)
    if row["task"] is None:
        row["task"] = "transcribe"
    return row


def ingest(source: str | Path, shards_dir: str | Path, cfg: IngestConfig, progress: bool = True) -> IngestSummary:
    """Ingest a directory or manifest into ``shards_dir``; see the module docstring."""
    shard_set = ShardSet(shards_dir)
    shard_set.remove_stale_temp_files()  # left by an ingest that was killed mid-write
    manifest = shard_set.read_manifest()
    existing = dict(zip(manifest.column("key").to_pylist(), manifest.column("sha256").to_pylist()))
    items, rejects = discover_inputs(source, cfg)
    summary = IngestSummary(inputs=len(items) + len(rejects), rejects=rejects)

    seen: dict[str, Path] = {}
    todo: list[InputItem] = []
    for item in items:
        if item.key in seen:
            rejects.append(Reject(display_path(item.source), item.key, f"duplicate key (also {display_path(seen[item.key])})"))
            continue
        seen[item.key] = item.source
        if cfg.require_text and not str(item.fields.get("text") or "").strip():
            rejects.append(Reject(display_path(item.source), item.key, "transcript missing"))
            continue
        todo.append(item)

    prepared: list[tuple[InputItem, dict[str, Any], bytes]] = []
    if cfg.workers > 1 and len(todo) > 1:
        with worker_pool(cfg.workers) as pool:
            known = [existing.get(item.key) for item in todo]
            results = pool.map(_prepare, todo, [cfg] * len(todo), known, chunksize=4)
            results = list(tqdm(results, total=len(todo), desc="ingest: decode", disable=not progress))
    else:
        results = [
            _prepare(item, cfg, existing.get(item.key)) for item in tqdm(todo, desc="ingest: decode", disable=not progress)
        ]
    for item, info, flac, reason in results:
        known = existing.get(item.key)
        if known is not None and reason is None:
            assert info is not None
            if info["sha256"] == known:
                summary.skipped_existing += 1
            else:
                rejects.append(Reject(display_path(item.source), item.key, "key already ingested with different content"))
        elif reason is not None:
            rejects.append(Reject(display_path(item.source), item.key, reason))
        else:
            assert info is not None and flac is not None
            prepared.append((item, info, flac))

    # New samples, in key order, fill new shards only: the same input always packs the same way.
    prepared.sort(key=lambda p: p[0].key)
    next_index = shard_set.next_shard_index()
    rows = manifest.to_pylist()
    per_shard = cfg.samples_per_shard
    for start in tqdm(range(0, len(prepared), per_shard), desc="ingest: shards", disable=not progress):
        chunk = prepared[start : start + per_shard]
        name = shard_name(next_index)
        next_index += 1
        samples = []
        for i, (item, info, flac) in enumerate(chunk):
            row = _manifest_row(item, info, name, i)
            meta = {k: v for k, v in row.items() if k not in ("shard", "index")}
            samples.append((item.key, flac, meta))
            rows.append(row)
            summary.audio_seconds += info["duration_s"]
        shard_set.write_shard(name, samples)
        # Manifest after the shard: a crash in between leaves an orphan tar that the next run overwrites.
        shard_set.write_manifest(pa.Table.from_pylist([{c: r.get(c) for c in MANIFEST_COLUMNS} for r in rows]))
        summary.new_shards.append(name)
        summary.ingested += len(chunk)

    shard_set.root.mkdir(parents=True, exist_ok=True)
    # Atomic like every file here (a new file renamed into place, never rewritten): a workdir grown from a hard-linked
    # copy of another (benchmarks/grow_corpus.sh) never changes the files they share.
    atomic_write_text(shard_set.rejects_path,
                      "".join(json.dumps({"file": r.file, "key": r.key, "reason": r.reason}) + "\n" for r in rejects))
    return summary
