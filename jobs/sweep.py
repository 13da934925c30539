"""LoRA rank x depth sweep of stage 1: ``python -m jobs.sweep --config FILE --ranks 4,8 --depths 2,4 [--set k=v ...]``.

For every point (rank ``r``, depth ``d``) it trains stage 1 (distillation) from scratch with
``student.lora_rank=r``, ``student.lora_layers=d``, ``student.distill_depth=d`` (LoRA on the first
``d`` decoder layers, the deepest teacher layer mapped to student layer ``d``) into its own
``<checkpoints>/sweep/r<r>-d<d>/``, through the same launcher as ``aura train``
(:func:`pipeline.train.launch.launch`, Ray Train + DeepSpeed). It then records the final held-out
cosine (last row of that point's ``distill/eval.csv``: mean and per layer), the final training loss,
the trainable parameter count (every tensor of the exported ``student.safetensors``: patch
embedding, LoRA, heads; LoRA alone in its own column) and the wall time, into one table written as
``sweep.md`` and ``sweep.csv`` under ``<reports>/`` (or ``--out``). The table is rewritten after
every point, so a long sweep can be watched, and a point that fails is recorded with its error
while the sweep goes on. ``--skip-done`` reuses points whose export already exists.

With Ray's job API::

    ray job submit --working-dir . -- python -m jobs.sweep --config configs/paper.yaml --ranks 8,16,32 --depths 8,16
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from jobs.common import add_job_arguments, int_list, job_config, last_row
from pipeline.config import AuraConfig
from pipeline.layout import stage_student


@dataclass
class SweepPoint:
    rank: int
    depth: int
    status: str = "pending"  # ok | reused | failed
    cos_mean: float | None = None
    cos_layers: dict[str, float] = field(default_factory=dict)
    final_loss: float | None = None
    trainable_params: int | None = None
    lora_params: int | None = None
    steps: int | None = None
    seconds: float | None = None
    run_dir: str = ""
    error: str = ""


def point_config(base: AuraConfig, rank: int, depth: int, root: Path) -> AuraConfig:
    """The base config with this point's student overrides and its own checkpoints folder."""
    data = base.model_dump(mode="json")
    data["student"].update({"lora_rank": rank, "lora_layers": depth, "distill_depth": depth, "layer_map": None})
    data["paths"]["checkpoints"] = str(root / f"r{rank}-d{depth}")
    return AuraConfig.model_validate(data)


def parameter_counts(export: Path) -> tuple[int, int]:
    """``(all trainable tensors, LoRA tensors)`` element counts of a ``student.safetensors`` export."""
    from safetensors import safe_open

    total = lora = 0
    with safe_open(str(export), framework="pt") as handle:
        for key in handle.keys():
            shape = handle.get_slice(key).get_shape()
            n = 1
            for s in shape:
                n *= int(s)
            total += n
            if key.startswith("lora."):
                lora += n
    return total, lora


def collect(point: SweepPoint, run_dir: Path) -> SweepPoint:
    """Fill ``point`` from a finished stage-1 run folder (``eval.csv``, ``metrics.csv``, ``export/``)."""
    evaluation = last_row(run_dir / "eval.csv")
    if evaluation:
        point.cos_layers = {k.removeprefix("cos_"): float(v) for k, v in evaluation.items()
                            if k.startswith("cos_L") and v not in (None, "")}
        if evaluation.get("cos_mean") not in (None, ""):
            point.cos_mean = float(evaluation["cos_mean"])
    metrics = last_row(run_dir / "metrics.csv")
    if metrics:
        point.final_loss = float(metrics["loss"]) if metrics.get("loss") not in (None, "") else None
        point.steps = int(float(metrics["step"]))
    export = stage_student(run_dir)
    if export.is_file():
        point.trainable_params, point.lora_params = parameter_counts(export)
    return point


COLUMNS = ["rank", "depth", "status", "cos_mean", "final_loss", "trainable_params", "lora_params", "steps",
           "seconds", "run_dir", "error"]


def write_table(points: Sequence[SweepPoint], out_dir: Path) -> tuple[Path, Path]:
    """``sweep.csv`` (one row per point, per-layer cosines as extra columns) and ``sweep.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    layers = sorted({k for p in points for k in p.cos_layers}, key=lambda k: int(k.removeprefix("L")))
    csv_path, md_path = out_dir / "sweep.csv", out_dir / "sweep.md"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS + [f"cos_{k}" for k in layers])
        for p in points:
            d = asdict(p)
            writer.writerow([d[c] if d[c] is not None else "" for c in COLUMNS] + [p.cos_layers.get(k, "") for k in layers])

    def fmt(v, digits=4):
        return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))

    lines = ["# LoRA rank x depth sweep (stage 1)", "",
             "Held-out cosine: mean per-token cosine of the distillation heads to the cached teacher layers at the "
             "end of training (last row of `eval.csv`). Trainable parameters: patch embedding + LoRA + heads.", "",
             "| rank | depth | held-out cos (mean) | " + " | ".join(f"cos {k}" for k in layers)
             + " | final loss | trainable params | LoRA params | steps | time (s) | status |",
             "|---|---|---|" + "---|" * len(layers) + "---|---|---|---|---|---|"]
    for p in points:
        status = p.status if not p.error else f"{p.status}: {p.error[:80]}"
        lines.append(f"| {p.rank} | {p.depth} | {fmt(p.cos_mean)} | "
                     + " | ".join(fmt(p.cos_layers.get(k)) for k in layers)
                     + f" | {fmt(p.final_loss)} | {fmt(p.trainable_params)} | {fmt(p.lora_params)} | {fmt(p.steps)} "
                     f"| {fmt(p.seconds, 1)} | {status} |")
    ok = [p for p in points if p.cos_mean is not None]
    if ok:
        best = max(ok, key=lambda p: p.cos_mean)
        lines += ["", f"Best held-out cosine: rank {best.rank}, depth {best.depth} ({best.cos_mean:.4f}, "
                      f"{fmt(best.trainable_params)} trainable parameters)."]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def run_sweep(cfg: AuraConfig, ranks: Sequence[int], depths: Sequence[int], out_dir: Path | None = None,
              skip_done: bool = False, address: str | None = None,
              launch_fn: Callable | None = None) -> list[SweepPoint]:
    """Train every (rank, depth) point and write the table; see the module docstring."""
    if launch_fn is None:
        from pipeline.train.launch import launch as launch_fn
    root = Path(cfg.paths.checkpoints) / "sweep"
    out_dir = Path(out_dir) if out_dir is not None else Path(cfg.paths.reports)
    points: list[SweepPoint] = []
    plan = [(r, d) for r in ranks for d in depths]
    for i, (rank, depth) in enumerate(plan, start=1):
        point = SweepPoint(rank, depth)
        points.append(point)
        point_cfg = point_config(cfg, rank, depth, root)
        run_dir = Path(point_cfg.paths.checkpoints) / "distill"
        point.run_dir = str(run_dir)
        print(f"\n=== sweep point {i}/{len(plan)}: rank {rank}, depth {depth} -> {run_dir}", flush=True)
        if skip_done and stage_student(run_dir).is_file():
            point.status = "reused"
        else:
            started = time.perf_counter()
            try:
                launch_fn(point_cfg, stage="distill", fresh=True, address=address)
                point.status = "ok"
            except Exception as exc:  # noqa: BLE001 - one failed point must not end the sweep
                point.status, point.error = "failed", f"{type(exc).__name__}: {exc}"
                print(f"sweep point rank {rank}, depth {depth} failed: {point.error}", file=sys.stderr, flush=True)
            point.seconds = time.perf_counter() - started
        collect(point, run_dir)
        write_table(points, out_dir)
    csv_path, md_path = write_table(points, out_dir)
    (out_dir / "sweep.json").write_text(json.dumps([asdict(p) for p in points], indent=1))
    print(md_path.read_text())
    print(f"sweep table: {md_path} and {csv_path}")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int_list, required=True, help="LoRA ranks, e.g. 4,8,16")
    parser.add_argument("--depths", type=int_list, required=True,
                        help="LoRA / distilled depths (decoder layers), e.g. 2,4,8")
    add_job_arguments(parser, "sweep.md / sweep.csv", "reuse points whose export already exists")
    args = parser.parse_args(argv)
    cfg = job_config(args, "sweep")
    if cfg is None:
        return 2
    points = run_sweep(cfg, args.ranks, args.depths, args.out, args.skip_done, args.address)
    return 0 if any(p.status in ("ok", "reused") for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
