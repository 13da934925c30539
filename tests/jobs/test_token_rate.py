"""The token-rate job: per-point configs, the order of the steps, the table and plot, a failing point,
--skip-done (the stages are faked here; precompute, the launcher and `aura eval` are covered for real by
tests/test_precompute.py, tests/train and tests/eval/test_eval.py)."""

import csv
import json
from pathlib import Path

from jobs.token_rate import point_config, run_token_rate
from pipeline.config import load_config


def _fake_steps(calls, fail_tasks_at=None):
    def record(step):
        def run(cfg):
            calls.append((step, cfg.store.pooling, Path(cfg.paths.store), Path(cfg.paths.checkpoints)))
            p = cfg.store.pooling
            if step == "precompute":
                store = Path(cfg.paths.store)
                computed = not store.exists()  # like run_precompute: False when every shard is committed
                store.mkdir(parents=True, exist_ok=True)
                return computed
            if step in ("distill", "tasks"):
                if step == "tasks" and p == fail_tasks_at:
                    raise RuntimeError("worker died")
                run = Path(cfg.paths.checkpoints) / step
                (run / "export").mkdir(parents=True)
                (run / "export" / "student.safetensors").write_bytes(b"")
                if step == "distill":
                    (run / "eval.csv").write_text(f"step,cos_L1,cos_mean\n0,0,0\n8,0.9,{0.9 - 0.1 * p}\n")
            elif step == "eval":
                heldout = {"utterances": 4, "wer": {"wer": 0.2 * p}, "qa": {"accuracy": 0.5 / p},
                           "latency": {"p50_s": 1.0 / p, "p95_s": 1.5 / p}, "ttft": {"p50_s": 0.4 / p},
                           "audio_tokens_mean": 150.0 / p, "new_tokens_mean": 6.0}
                report = {"systems": {"aura": {"status": "ok", "sets": {"heldout": heldout},
                                               "memory": {"peak_mb": 600.0 - p}}}}
                Path(cfg.paths.reports).mkdir(parents=True, exist_ok=True)
                (Path(cfg.paths.reports) / "report.json").write_text(json.dumps(report))
        return run
    return {step: record(step) for step in ("precompute", "distill", "tasks", "eval")}


def test_point_config(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"workdir={tmp_path}"])
    same = point_config(cfg, cfg.store.pooling)
    assert same.paths.store == cfg.paths.store  # the base pooling reuses the base store
    other = point_config(cfg, 4)
    assert other.store.pooling == 4 and other.paths.store == tmp_path / "token_rate" / "p4" / "store.zarr"
    assert other.paths.checkpoints == tmp_path / "token_rate" / "p4" / "checkpoints"
    assert other.paths.reports == tmp_path / "token_rate" / "p4" / "reports"
    assert other.paths.shards == cfg.paths.shards and other.paths.corpus == cfg.paths.corpus
    assert cfg.store.pooling == 1  # the base config is untouched


def test_token_rate_table_plot_and_skip_done(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"workdir={tmp_path}"])
    calls = []
    out = tmp_path / "out"
    points = run_token_rate(cfg, [1, 2, 4], out, steps=_fake_steps(calls, fail_tasks_at=4))
    assert [(c[0], c[1]) for c in calls] == [
        ("precompute", 1), ("distill", 1), ("tasks", 1), ("eval", 1),
        ("precompute", 2), ("distill", 2), ("tasks", 2), ("eval", 2),
        ("precompute", 4), ("distill", 4), ("tasks", 4)]  # pooling 4 stops at the failed stage
    assert len({c[2] for c in calls}) == 3 and len({c[3] for c in calls}) == 3  # a store and a run per rate
    by_pooling = {p.pooling: p for p in points}
    p2 = by_pooling[2]
    assert p2.status == "ok" and p2.tokens_per_second == 25.0
    assert (p2.wer, p2.qa_accuracy, p2.latency_p50_s, p2.peak_mb, p2.audio_tokens_mean) == (0.4, 0.25, 0.5, 598.0, 75.0)
    assert abs(p2.cos_mean - 0.7) < 1e-9 and set(p2.seconds) == {"precompute", "distill", "tasks", "eval"}
    p4 = by_pooling[4]
    assert p4.status == "failed" and p4.error == "tasks: RuntimeError: worker died" and p4.wer is None
    md = (out / "token_rate.md").read_text()
    assert "| 2 | 25 | 75.0 | 0.700 | 40.0% | 25.0% | 0.500 | 0.750 | 0.50x | 6.0 | 0.200 | 0.50x | 598 | ok |" in md
    assert "failed: tasks: RuntimeError: worker died" in md
    with open(out / "token_rate.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["pooling"] for r in rows] == ["1", "2", "4"] and rows[0]["tokens_per_second"] == "50.0"
    assert (out / "token_rate.png").stat().st_size > 10_000
    assert [p["pooling"] for p in json.loads((out / "token_rate.json").read_text())] == [1, 2, 4]

    first_seconds = {p.pooling: dict(p.seconds) for p in points}

    # --skip-done: finished stages are reused (precompute is incremental by itself), the failed one retried
    calls.clear()
    points = run_token_rate(cfg, [1, 2, 4], out, skip_done=True, steps=_fake_steps(calls))
    assert [(c[0], c[1]) for c in calls] == [("precompute", 1), ("precompute", 2), ("precompute", 4),
                                             ("tasks", 4), ("eval", 4)]
    assert [p.status for p in points] == ["reused", "reused", "ok"] and points[2].wer == 0.8
    # reused stages keep their times, and so does a precompute that found nothing left to do
    assert points[1].seconds == first_seconds[2]
