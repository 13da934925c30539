"""The report writer on synthetic results, and ``aura eval`` end to end on a tiny workdir."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.eval.report import interpretation, write_report


def _set(wer, acc, p50):
    return {"utterances": 4, "wer": {"wer": wer}, "qa": {"accuracy": acc},
            "latency": {"p50_s": p50, "p95_s": p50 * 1.2}, "ttft": {"p50_s": p50 / 3}, "audio_tokens_mean": 50.0,
            "samples": [{"task": "transcribe", "reference": "a | b", "prediction": "a b"}]}


def _results():
    return {
        "models": {"teacher": "bundled:whisper-tiny.en", "llm": "bundled:smollm2-135m-instruct"},
        "device": "cuda", "dtype": "bfloat16", "max_new_tokens": 48,
        "dataset": {"utterances": 400, "transcribe": 200, "spoken_qa": 200, "audio_seconds": 1000.0},
        "cosine": {"distill": {"layers": {"2": 0.8, "4": 0.7}, "mean": 0.75, "layer_map": {"2": 8, "4": 15}}},
        "systems": {
            "aura": {"status": "ok", "sets": {"heldout": _set(0.12, 0.6, 0.4)}, "memory": {"peak_mb": 600.0},
                     "describe": {"export": "ckpt/tasks/export/student.safetensors"}},
            "bridge": {"status": "ok", "sets": {"heldout": _set(0.10, 0.55, 0.5), "sdqa:x": _set(None, 0.3, 0.5)},
                       "memory": {"peak_mb": 700.0}},
            "cascade": {"status": "skipped", "reason": "no whisper"},
            "text": {"status": "ok", "sets": {"heldout": _set(0.0, 0.8, 0.3)}, "memory": {"peak_mb": 590.0}},
        },
        "notes": ["a note"],
    }


def test_write_report_makes_markdown_json_and_plots(tmp_path):
    checkpoints = tmp_path / "ckpt"
    (checkpoints / "distill").mkdir(parents=True)
    (checkpoints / "distill" / "metrics.csv").write_text("step,loss,lr\n1,0.9,0.001\n2,0.7,0.001\n")
    (checkpoints / "distill" / "eval.csv").write_text("step,cos_L2,cos_mean\n0,0.1,0.1\n2,0.5,0.5\n")
    paths = write_report(_results(), tmp_path / "reports", checkpoints)
    md = paths["markdown"].read_text()
    assert "| AuRA | 12.0% | 60.0% | 0.400 |" in md
    assert "skipped: no whisper" in md
    assert "External set: sdqa:x" in md and "a \\| b" in md
    assert "0.80x the bridge's" in md  # the interpretation reads the ratios off the table
    for png in ("quality.png", "latency.png", "memory.png", "cosine.png", "training.png"):
        data = (tmp_path / "reports" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"({png})" in md
    saved = json.loads(paths["json"].read_text())
    assert saved["systems"]["aura"]["memory"]["peak_mb"] == 600.0 and saved["training_curves"] == ["distill_eval", "distill_metrics"]


def test_interpretation_caveats():
    results = _results()
    results["models"]["llm"] = "random:llama-tiny"
    results["device"] = "cpu"
    results["dataset"]["utterances"] = 5
    text = " ".join(interpretation(results))
    assert "random-weight" in text and "only 5 held-out" in text and "CPU timings" in text


def test_aura_eval_end_to_end(eval_cfg):
    from pipeline.eval.run import run_eval

    results = run_eval(eval_cfg, max_samples=3, bridge_steps=2, progress=False)
    reports = Path(eval_cfg.paths.reports)
    assert (reports / "report.md").is_file() and (reports / "report.json").is_file()
    for png in ("quality.png", "latency.png", "memory.png", "cosine.png", "training.png"):
        assert (reports / png).is_file(), png
    systems = results["systems"]
    assert set(systems) == {"aura", "bridge", "cascade", "text"}
    for name, system in systems.items():
        assert system["status"] == "ok", (name, system)
        heldout = system["sets"]["heldout"]
        assert heldout["utterances"] == 3
        assert heldout["wer"]["wer"] is not None and heldout["qa"]["accuracy"] is not None
        assert heldout["latency"]["p50_s"] > 0 and heldout["ttft"]["p50_s"] > 0
        assert system["memory"]["peak_bytes"] > 0
    # AuRA: one token per teacher frame; the bridge stacks 4 frames per token
    aura_tokens = systems["aura"]["sets"]["heldout"]["audio_tokens_mean"]
    assert systems["bridge"]["sets"]["heldout"]["audio_tokens_mean"] == pytest.approx(aura_tokens / 4, abs=1)
    cos = results["cosine"]["distill"]
    assert set(cos["layers"]) == {"2", "4"} and -1 <= cos["mean"] <= 1
    assert results["bridge_training"]["steps"] == 2
    assert (Path(eval_cfg.paths.checkpoints) / "bridge" / "projector.safetensors").is_file()
    md = (reports / "report.md").read_text()
    assert "| AuRA |" in md and "## Distillation: per-layer cosine" in md


def test_aura_eval_reports_a_missing_export_as_skipped(eval_cfg, tmp_path):
    from pipeline.eval.run import run_eval

    empty = tmp_path / "no-checkpoints"
    cfg = eval_cfg.model_copy(deep=True)
    cfg.paths.checkpoints = empty
    results = run_eval(cfg, systems=["aura", "text"], max_samples=1, progress=False)
    assert results["systems"]["aura"]["status"] == "skipped"
    assert "no trained student" in results["systems"]["aura"]["reason"]
    assert results["systems"]["text"]["status"] == "ok"


def test_aura_eval_reads_a_ctc_student_through_its_head(eval_cfg, tmp_path):
    """``--systems aura_ctc --export FILE`` evaluates that file's CTC read-out; a student without a head is skipped
    with the reason."""
    from pipeline.eval.run import run_eval
    from pipeline.models.sources import load_llm
    from pipeline.models.student import AuraStudent
    from pipeline.store import open_store_for

    fp = open_store_for(eval_cfg, mode="r").fingerprint
    llm, _ = load_llm(eval_cfg.models.llm, eval_cfg.models.cache_dir)
    student = AuraStudent.from_llm(llm, eval_cfg.student.model_copy(update={"ctc_weight": 0.5}), fp.layers, fp.width,
                                   fp.mel.n_mels, fp.pooling)
    export = student.save_trainable(tmp_path / "ctc" / "student.safetensors")
    results = run_eval(eval_cfg, systems=["aura_ctc"], max_samples=2, export_path=export, progress=False)
    system = results["systems"]["aura_ctc"]
    assert system["status"] == "ok" and system["describe"]["export"] == str(export)
    assert system["sets"]["heldout"]["wer"]["wer"] is not None and system["sets"]["heldout"]["qa"]["accuracy"] is not None
    skipped = run_eval(eval_cfg, systems=["aura_ctc"], max_samples=1, progress=False)["systems"]["aura_ctc"]
    assert skipped["status"] == "skipped" and "no CTC head" in skipped["reason"]


def test_aura_eval_judges_every_heldout_utterance_of_a_corpus_grown_past_its_store(eval_workdir, tmp_path):
    """A corpus grown by an ingest whose teacher targets are not computed yet (no `aura precompute` since): the
    systems are judged on every held-out utterance of the shards, not only those the store holds, and the report
    says how many the cosine could read."""
    import pyarrow.parquet as pq

    from pipeline.config import load_config
    from pipeline.data.audio import speechlike, to_flac_bytes
    from pipeline.data.shards import MANIFEST_SCHEMA, ShardSet
    from pipeline.eval.run import run_eval

    workdir, overrides = eval_workdir
    grown = tmp_path / "grown"
    shutil.copytree(workdir, grown)
    cfg = load_config("configs/tiny.yaml", overrides + [f"workdir={grown}", f"paths.reports={tmp_path / 'reports'}"])
    shards = ShardSet(cfg.paths.shards)
    manifest = pq.read_table(shards.manifest_path).to_pylist()
    before = sum(row["split"] == "heldout" for row in manifest)
    new_rows, samples = [], []
    for i in range(2):
        audio, key = speechlike(0.6, seed=100 + i), f"grown-{i}"
        meta = {"key": key, "text": "she sells fresh bread", "task": "transcribe", "question": None, "answer": None,
                "split": "heldout"}
        samples.append((key, to_flac_bytes(audio, 16000), meta))
        new_rows.append({**manifest[-1], **meta, "shard": "shard-000099", "index": i, "source": f"synthetic/{key}.wav",
                         "duration_s": len(audio) / 16000, "num_samples": len(audio)})
    shards.write_shard("shard-000099", samples)
    shards.write_manifest(pa.Table.from_pylist(manifest + new_rows, schema=MANIFEST_SCHEMA))

    results = run_eval(cfg, systems=["text"], max_samples=100, progress=False)
    assert results["systems"]["text"]["sets"]["heldout"]["utterances"] == before + 2
    assert any(f"targets for {before} of the {before + 2} held-out" in note for note in results["notes"]), results["notes"]
