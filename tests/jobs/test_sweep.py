"""The rank x depth sweep job: per-point configs, the table, a failing point (training itself is faked here;
the real launcher is covered by tests/train)."""

import csv
from pathlib import Path

import torch
from safetensors.torch import save_file

from jobs.sweep import main, point_config, run_sweep
from pipeline.config import load_config


def _fake_launch(calls):
    def launch(cfg, stage, fresh, address=None):
        calls.append((cfg.student.lora_rank, cfg.student.lora_layers, cfg.student.distill_depth, stage, fresh,
                      Path(cfg.paths.checkpoints)))
        if cfg.student.distill_depth > 4:
            raise ValueError(f"student.distill_depth={cfg.student.distill_depth} exceeds the LLM's 4 layers")
        run = Path(cfg.paths.checkpoints) / stage
        (run / "export").mkdir(parents=True)
        r, d = cfg.student.lora_rank, cfg.student.distill_depth
        (run / "eval.csv").write_text(f"step,cos_L2,cos_L4,cos_mean\n0,0,0,0\n8,{0.1 * r},{0.01 * d},{0.1 * r + 0.01 * d}\n")
        (run / "metrics.csv").write_text("step,epoch,loss\n1,0,1.0\n8,0,0.25\n")
        save_file({"patch_embedding.w": torch.zeros(10), "heads.layer_2.w": torch.zeros(5),
                   "lora.a": torch.zeros(r, d), "lora.b": torch.zeros(d, r)}, str(run / "export" / "student.safetensors"))
    return launch


def test_point_config_overrides(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"workdir={tmp_path}", "student.layer_map={2: 1, 4: 2}"])
    point = point_config(cfg, rank=8, depth=3, root=tmp_path / "sweep")
    s = point.student
    assert (s.lora_rank, s.lora_layers, s.distill_depth, s.layer_map) == (8, 3, 3, None)
    assert point.paths.checkpoints == tmp_path / "sweep" / "r8-d3"
    assert point.paths.store == cfg.paths.store  # the points share the data and the store
    assert cfg.student.lora_rank == 4  # the base config is untouched


def test_sweep_table(tmp_path):
    cfg = load_config("configs/tiny.yaml", [f"workdir={tmp_path}"])
    calls = []
    points = run_sweep(cfg, ranks=[2, 4], depths=[2, 8], out_dir=tmp_path / "out", launch_fn=_fake_launch(calls))
    assert [(c[0], c[1], c[2], c[3], c[4]) for c in calls] == [
        (2, 2, 2, "distill", True), (2, 8, 8, "distill", True), (4, 2, 2, "distill", True), (4, 8, 8, "distill", True)]
    assert len({c[5] for c in calls}) == 4  # one checkpoints folder per point
    ok = {(p.rank, p.depth): p for p in points}
    assert ok[(2, 2)].status == "ok" and ok[(2, 2)].cos_mean == 0.22 and ok[(2, 2)].final_loss == 0.25
    assert ok[(4, 2)].trainable_params == 10 + 5 + 2 * 4 * 2 and ok[(4, 2)].lora_params == 16
    assert ok[(2, 8)].status == "failed" and "exceeds" in ok[(2, 8)].error
    with open(tmp_path / "out" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[0]["cos_L2"] == "0.2"
    md = (tmp_path / "out" / "sweep.md").read_text()
    assert "| 4 | 2 | 0.4200 |" in md and "Best held-out cosine: rank 4, depth 2" in md and "failed: ValueError" in md

    # --skip-done reuses finished points and retries the failed ones
    calls.clear()
    run_sweep(cfg, ranks=[2, 4], depths=[2, 8], out_dir=tmp_path / "out", skip_done=True, launch_fn=_fake_launch(calls))
    assert [(c[0], c[2]) for c in calls] == [(2, 8), (4, 8)]


def test_cli_rejects_bad_lists(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--ranks", "4,x", "--depths", "2"])
