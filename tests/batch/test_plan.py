"""The batch job's plan and output folder: parts, growth, duplicates, broken rows, a changed job."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.batch.plan import BatchJobMismatch, BatchOutput, extend_plan, request_row, requests_from_source
from pipeline.batch.worker import batches_by_length
from pipeline.requests import answer_robustly
from pipeline.config import IngestConfig

TRANSCRIBE = "Transcribe the audio."


def rows(n: int, start: int = 0) -> list[dict]:
    return [request_row(i, f"k{i}", f"/a/{i}.wav", TRANSCRIBE) for i in range(start, start + n)]


def test_a_grown_input_keeps_every_planned_row_in_its_part():
    plan = extend_plan([], rows(5), part_size=2)
    grown = extend_plan(plan, rows(8), part_size=2)  # k0..k4 again, then k5..k7
    assert [(r["key"], r["part"]) for r in grown[:5]] == [(r["key"], r["part"]) for r in plan]
    assert [r["part"] for r in grown[5:]] == [3, 3, 4]
    assert len({r["key"] for r in grown}) == len(grown) == 8


def test_manifest_rows_duplicates_and_broken_lines_each_get_a_row(tmp_path, write_wav):
    write_wav(tmp_path / "a.wav", text=None)
    write_wav(tmp_path / "b.wav", text=None, seed=1)
    lines = [json.dumps({"audio": "a.wav", "key": "same"}), json.dumps({"audio": "b.wav", "key": "same"}),
             "{not json", json.dumps({"key": "no-audio"}),
             json.dumps({"audio": "a.wav", "key": "q", "task": "spoken_qa"}),
             json.dumps({"audio": "b.wav", "key": "own", "instruction": "Who speaks?"})]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    requests = requests_from_source(manifest, IngestConfig(), instruction=None)
    by_key = {r["key"]: r for r in requests}
    assert len(requests) == 6 and len(by_key) == 6
    assert by_key["same"]["error"] is None and by_key["same"]["source"].endswith("a.wav")
    duplicate = next(r for r in requests if r["key"].startswith("same#"))
    assert "duplicate key 'same'" in duplicate["error"]
    broken = [r for r in requests if r["error"] and "duplicate" not in r["error"]]
    assert sorted(r["error"].split(" (")[0] for r in broken) == ["malformed JSONL line", "row has no 'audio' path"]
    assert by_key["q"]["instruction"].startswith("Answer the question")
    assert by_key["own"]["instruction"] == "Who speaks?"
    assert {r["instruction"] for r in requests_from_source(manifest, IngestConfig(), "Say it.")} == {"Say it."}


def test_split_needs_a_shard_folder(tmp_path, write_wav):
    write_wav(tmp_path / "a.wav")
    with pytest.raises(ValueError, match="folder of ingested shards"):
        requests_from_source(tmp_path, IngestConfig(), None, split="heldout")


def test_output_refuses_another_job_and_removes_dead_writers_temp_files(tmp_path):
    out = BatchOutput(tmp_path / "out")
    out.prepare({"system": "aura", "export_sha256": "abc"})
    out.prepare({"system": "aura", "export_sha256": "abc"})  # the same job resumes
    with pytest.raises(BatchJobMismatch, match="export_sha256"):
        out.prepare({"system": "aura", "export_sha256": "def"})
    stale = out.parts_dir / f".{out.part_path(0).name}.tmp-{__import__('socket').gethostname().replace('.', '_')}.999999999"
    stale.write_bytes(b"half a part")
    out.prepare({"system": "aura", "export_sha256": "abc"})
    assert not stale.exists()


def test_parts_read_back_in_plan_order(tmp_path):
    out = BatchOutput(tmp_path)
    out.prepare({})
    row = {"answer": "x", "error": None, "worker": "w", "source": "s", "instruction": TRANSCRIBE}
    out.write_part(1, [{**row, "key": "c", "part": 1, "position": 2}])
    out.write_part(0, [{**row, "key": "b", "part": 0, "position": 1}, {**row, "key": "a", "part": 0, "position": 0}])
    assert out.done_parts() == {0, 1}
    assert out.read_results().column("key").to_pylist() == ["a", "b", "c"]
    assert pq.read_table(out.write_results()).num_rows == 3


def test_batches_group_neighbours_in_length():
    assert batches_by_length([5.0, 1.0, 4.0, 2.0, 3.0], 2) == [[1, 3], [4, 2], [0]]


def test_a_failed_batch_is_retried_one_request_at_a_time():
    calls = []

    def answer(audios, instructions):
        calls.append(len(audios))
        if len(audios) > 1 or audios[0] == "bad":
            raise RuntimeError("out of memory")
        return [f"ok {audios[0]}"]

    assert answer_robustly(answer, ["a", "bad", "c"], ["i"] * 3) == [
        "ok a", "generation failed: RuntimeError: out of memory", "ok c"]
    assert calls == [3, 1, 1, 1]
