"""What a batch-inference job has to answer, and what it has already written.

The job's output folder is its own record of progress::

    OUT/
      job.json                 the system and model files answering, and the generation settings
      plan.parquet             every request: part, position, key, source, shard, instruction, error
      parts/part-000000.parquet  the answers of one part, written atomically once the part is done
      results.parquet          every part in plan order, written when the last part is done
      summary.json             rows, failures, audio hours, wall time, audio hours per hour

A request belongs to exactly one part and a part file appears whole or not at all, so a re-run after
a kill answers only the parts without a file and no row is ever written twice. Re-running on a grown
manifest appends the new keys as new parts; the parts already written are kept as they are.

    >>> import tempfile
    >>> out = BatchOutput(tempfile.mkdtemp())
    >>> rows = [request_row(position=i, key=f"k{i}", source=f"a/{i}.wav", instruction="Transcribe the audio.")
    ...         for i in range(5)]
    >>> plan = extend_plan([], rows, part_size=2)
    >>> [r["part"] for r in plan]
    [0, 0, 1, 1, 2]
    >>> out.write_plan(plan)
    >>> [r["part"] for r in extend_plan(out.read_plan(), rows + [request_row(5, "k5", "a/5.wav", "Hi")], 2)]
    [0, 0, 1, 1, 2, 3]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import IngestConfig
from pipeline.fs import atomic_write_bytes, atomic_write_text, remove_stale_temp_files

PLAN_SCHEMA = pa.schema([
    ("part", pa.int32()),
    ("position", pa.int64()),  # order of the request in its input
    ("key", pa.string()),
    ("source", pa.string()),  # the audio file, or the shard folder for ingested samples
    ("shard", pa.string()),  # set for requests read from ingested shards
    ("instruction", pa.string()),
    ("error", pa.string()),  # set when the input row itself is broken (no audio path, bad JSON line)
])

RESULT_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("source", pa.string()),
    ("instruction", pa.string()),
    ("answer", pa.string()),
    ("error", pa.string()),
    ("duration_s", pa.float64()),
    ("num_audio_tokens", pa.int32()),
    ("new_tokens", pa.int32()),
    ("finish_reason", pa.string()),
    ("latency_s", pa.float64()),  # wall time of the batch that answered the request
    ("batch_size", pa.int32()),
    ("part", pa.int32()),
    ("position", pa.int64()),
    ("worker", pa.string()),
])


class BatchJobMismatch(ValueError):
    """The output folder holds answers of another system, model or setting."""


def request_row(position: int, key: str, source: str, instruction: str, shard: str | None = None,
                error: str | None = None) -> dict[str, Any]:
    """One row of the plan before it is given a part."""
    return {"part": -1, "position": position, "key": key, "source": source, "shard": shard,
            "instruction": instruction, "error": error}


def extend_plan(plan: list[dict[str, Any]], requests: list[dict[str, Any]], part_size: int) -> list[dict[str, Any]]:
    """``plan`` with the requests whose key it lacks appended as new parts of ``part_size`` rows.

    Rows already planned keep their part, so part files written by an earlier run stay valid.
    """
    known = {r["key"] for r in plan}
    fresh = [dict(r) for r in requests if r["key"] not in known]
    first_part = max((r["part"] for r in plan), default=-1) + 1
    for i, row in enumerate(fresh):
        row["part"] = first_part + i // part_size
    return [*plan, *fresh]


def requests_from_source(source: str | Path, ingest: IngestConfig, instruction: str | None,
                         split: str | None = None) -> list[dict[str, Any]]:
    """The requests of a manifest (``.jsonl``/``.parquet``, as ``aura ingest`` reads it), a folder of audio
    files, or a folder of ingested shards (``manifest.parquet`` + ``shard-*.tar``; ``split`` keeps one split).

    Each request's instruction is ``instruction`` when given, else the row's own ``instruction``, else
    the prompt of the row's ``task`` (transcription by default). A key seen twice is answered once;
    the second row gets an error so that it is not silently dropped.
    """
    from pipeline.data.ingest import discover_inputs, display_path
    from pipeline.data.shards import ShardSet
    from pipeline.prompts import instruction_for

    def instruction_of(fields: dict[str, Any]) -> str:
        return instruction or fields.get("instruction") or instruction_for(fields.get("task"))

    source = Path(source)
    shards = ShardSet(source)
    rows: list[dict[str, Any]] = []
    if source.is_dir() and shards.manifest_path.is_file():
        for sample in shards.manifest_rows():
            if split is None or sample.get("split") == split:
                rows.append(request_row(len(rows), sample["key"], str(source.absolute()), instruction_of(sample),
                                        shard=sample["shard"]))
    else:
        if split is not None:
            raise ValueError(f"--split needs a folder of ingested shards; {display_path(source)} is not one")
        items, rejects = discover_inputs(source, ingest)
        for item in items:
            rows.append(request_row(len(rows), item.key, str(item.source.absolute()), instruction_of(item.fields)))
        for reject in rejects:
            rows.append(request_row(len(rows), reject.key or reject.file, reject.file, instruction_of({}),
                                    error=reject.reason))
    seen: dict[str, int] = {}
    for row in rows:
        if row["key"] in seen and row["error"] is None:
            row["error"] = f"duplicate key {row['key']!r} (first at input row {seen[row['key']]})"
            row["key"] = f"{row['key']}#dup{row['position']}"
        seen.setdefault(row["key"], row["position"])
    return rows


class BatchOutput:
    """The output folder of one batch-inference job (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.parts_dir = self.root / "parts"
        self.job_path = self.root / "job.json"
        self.plan_path = self.root / "plan.parquet"
        self.results_path = self.root / "results.parquet"
        self.summary_path = self.root / "summary.json"

    def part_path(self, part: int) -> Path:
        return self.parts_dir / f"part-{part:06d}.parquet"

    def prepare(self, job: dict[str, Any]) -> None:
        """Create the folder for ``job``, or check that it already holds the same job; drop temp files of
        killed writers."""
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        if self.job_path.is_file():
            recorded = json.loads(self.job_path.read_text())
            if recorded != job:
                changed = sorted(k for k in {*recorded, *job} if recorded.get(k) != job.get(k))
                raise BatchJobMismatch(
                    f"{self.root} holds answers of another job (differs in {', '.join(changed)}: "
                    f"{ {k: recorded.get(k) for k in changed} } there, { {k: job.get(k) for k in changed} } now); "
                    "use another --out, or delete it to start over")
        else:
            atomic_write_text(self.job_path, json.dumps(job, indent=2, sort_keys=True) + "\n")
        for folder in (self.root, self.parts_dir):
            remove_stale_temp_files(folder)

    def read_plan(self) -> list[dict[str, Any]]:
        return pq.read_table(self.plan_path, schema=PLAN_SCHEMA).to_pylist() if self.plan_path.is_file() else []

    def write_plan(self, plan: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(plan, schema=PLAN_SCHEMA)
        atomic_write_bytes(self.plan_path, lambda f: pq.write_table(table, f))

    def done_parts(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.parts_dir.glob("part-*.parquet")}

    def write_part(self, part: int, rows: list[dict[str, Any]]) -> Path:
        table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
        path = self.part_path(part)
        atomic_write_bytes(path, lambda f: pq.write_table(table, f))
        return path

    def read_results(self) -> pa.Table:
        """Every answered part's rows in plan order (parts not yet written are absent)."""
        tables = [pq.read_table(p, schema=RESULT_SCHEMA) for p in sorted(self.parts_dir.glob("part-*.parquet"))]
        table = pa.concat_tables(tables) if tables else RESULT_SCHEMA.empty_table()
        return table.sort_by([("part", "ascending"), ("position", "ascending")])

    def write_results(self, table: pa.Table | None = None) -> Path:
        """``results.parquet`` from ``table`` (as :meth:`read_results` gives it; read when not given)."""
        table = self.read_results() if table is None else table
        atomic_write_bytes(self.results_path, lambda f: pq.write_table(table, f))
        return self.results_path
