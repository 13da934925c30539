"""Token-rate trade-off: ``python -m jobs.token_rate --config FILE --poolings 1,2,4 [--set k=v ...]``.

The student reads ``50 / pooling`` audio tokens per second of speech (Whisper's 50 Hz frame rate,
average-pooled by ``store.pooling``). Fewer tokens make every answer cheaper — the prompt the LLM
must read shrinks — but give the patch embedding and the LLM less to work with. This job measures
both sides on the same data and budget: for every pooling factor ``p`` it runs the whole AuRA path
with ``store.pooling=p``:

1. precompute the teacher targets at that rate (the base config's store when ``p`` is its pooling,
   else ``<workdir>/token_rate/p<p>/store.zarr``; incremental, so a re-run computes nothing twice);
2. stage 1 (distillation) and stage 2 (speech tasks) into ``<workdir>/token_rate/p<p>/checkpoints``,
   through the same launcher as ``aura train`` (Ray Train + DeepSpeed);
3. ``aura eval`` of the encoder-free student (``--systems``, default ``aura``) into
   ``<workdir>/token_rate/p<p>/reports``;

and records tokens per second, the held-out cosine after stage 1, WER, spoken-QA accuracy, latency
p50/p95, time to first token, peak memory and the wall time of each step, in one table
(``token_rate.md`` / ``.csv`` / ``.json``) and one plot (``token_rate.png``: quality and latency
against the token rate) under ``<reports>/`` (or ``--out``). The table is rewritten after every
point, a failing point is recorded with its error while the job goes on, and ``--skip-done`` reuses
the stages whose outputs exist (``export/`` of each stage, the point's ``report.json``).

With Ray's job API::

    ray job submit --working-dir . -- python -m jobs.token_rate --config configs/paper.yaml --poolings 1,2,4
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
from pipeline.data.mel import frame_rate_hz
from pipeline.eval.report import format_value, pyplot
from pipeline.layout import RunLayout


@dataclass
class TokenRatePoint:
    pooling: int
    tokens_per_second: float
    status: str = "pending"  # ok | reused | failed
    cos_mean: float | None = None          # held-out cosine to the teacher after stage 1
    wer: float | None = None
    qa_accuracy: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    ttft_p50_s: float | None = None
    peak_mb: float | None = None
    audio_tokens_mean: float | None = None
    new_tokens_mean: float | None = None  # answer length: latency p50 depends on it, TTFT does not
    utterances: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per step run now
    root: str = ""
    error: str = ""


STEPS = ("precompute", "distill", "tasks", "eval")


def point_root(cfg: AuraConfig, pooling: int) -> Path:
    return Path(cfg.workdir) / "token_rate" / f"p{pooling}"


def point_config(base: AuraConfig, pooling: int) -> AuraConfig:
    """The base config at ``store.pooling=pooling`` with its own checkpoints and reports (and store,
    unless ``pooling`` is the base's); corpus and shards are shared."""
    root = point_root(base, pooling)
    data = base.model_dump(mode="json")
    data["store"]["pooling"] = pooling
    if pooling != base.store.pooling:
        data["paths"]["store"] = str(root / "store.zarr")
    data["paths"]["checkpoints"] = str(root / "checkpoints")
    data["paths"]["reports"] = str(root / "reports")
    return AuraConfig.model_validate(data)


def collect(point: TokenRatePoint, cfg: AuraConfig, system: str = "aura") -> TokenRatePoint:
    """Fill ``point`` from its stage-1 ``eval.csv`` and its ``report.json``."""
    evaluation = last_row(RunLayout.of(cfg).eval_log("distill"))
    if evaluation and evaluation.get("cos_mean") not in (None, ""):
        point.cos_mean = float(evaluation["cos_mean"])
    report = Path(cfg.paths.reports) / "report.json"
    if not report.is_file():
        return point
    result = json.loads(report.read_text()).get("systems", {}).get(system, {})
    if result.get("status") != "ok":
        point.error = point.error or f"eval of {system}: {result.get('error', 'no result')}"
        return point
    heldout = result.get("sets", {}).get("heldout", {})
    point.wer = heldout.get("wer", {}).get("wer")
    point.qa_accuracy = heldout.get("qa", {}).get("accuracy")
    point.latency_p50_s = heldout.get("latency", {}).get("p50_s")
    point.latency_p95_s = heldout.get("latency", {}).get("p95_s")
    point.ttft_p50_s = heldout.get("ttft", {}).get("p50_s")
    point.audio_tokens_mean = heldout.get("audio_tokens_mean")
    point.new_tokens_mean = heldout.get("new_tokens_mean")
    point.utterances = heldout.get("utterances")
    point.peak_mb = result.get("memory", {}).get("peak_mb")
    return point


COLUMNS = ["pooling", "tokens_per_second", "status", "cos_mean", "wer", "qa_accuracy", "latency_p50_s",
           "latency_p95_s", "ttft_p50_s", "peak_mb", "audio_tokens_mean", "new_tokens_mean", "utterances", "root", "error"]


def write_table(points: Sequence[TokenRatePoint], out_dir: Path) -> tuple[Path, Path]:
    """``token_rate.csv`` (one row per point, step times as extra columns) and ``token_rate.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / "token_rate.csv", out_dir / "token_rate.md"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS + [f"{s}_s" for s in STEPS])
        for p in points:
            d = asdict(p)
            writer.writerow([d[c] if d[c] is not None else "" for c in COLUMNS] + [p.seconds.get(s, "") for s in STEPS])
    base = next((p for p in points if p.latency_p50_s and p.ttft_p50_s), None)

    def rel(value, ref) -> str:
        return f"{value / ref:.2f}x" if value and ref else "–"

    lines = ["# Audio token rate: quality and latency", "",
             "One AuRA student per pooling factor, each trained from scratch on the same data and budget "
             "(stage 1 + stage 2), evaluated on the same held-out utterances. Latency: per utterance, greedy "
             "decoding, p50 over all tasks (it also depends on how long the answers are: new tokens); time to first token "
             "(TTFT) is where the audio tokens cost. Relative columns: against the first row.", "",
             "| pooling | audio tokens/s | audio tokens per utterance | held-out cos (stage 1) | WER | QA acc "
             "| latency p50 (s) | latency p95 (s) | rel. latency | new tokens | TTFT p50 (s) | rel. TTFT | peak mem (MB) "
             "| status |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        status = p.status if not p.error else f"{p.status}: {p.error[:80]}"
        lines.append(f"| {p.pooling} | {p.tokens_per_second:g} | {format_value(p.audio_tokens_mean, 1)} | {format_value(p.cos_mean)} "
                     f"| {format_value(p.wer, percent=True)} | {format_value(p.qa_accuracy, percent=True)} | {format_value(p.latency_p50_s)} "
                     f"| {format_value(p.latency_p95_s)} | {rel(p.latency_p50_s, base and base.latency_p50_s)} | {format_value(p.new_tokens_mean, 1)} "
                     f"| {format_value(p.ttft_p50_s)} | {rel(p.ttft_p50_s, base and base.ttft_p50_s)} | {format_value(p.peak_mb, 0)} "
                     f"| {status} |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def plot(points: Sequence[TokenRatePoint], path: Path) -> Path | None:
    """Quality (WER, QA accuracy, cosine) and latency (p50, TTFT) against audio tokens per second."""
    done = sorted((p for p in points if p.latency_p50_s is not None), key=lambda p: p.tokens_per_second)
    if not done:
        return None
    plt = pyplot()
    rates = [p.tokens_per_second for p in done]
    fig, (ax_q, ax_l) = plt.subplots(1, 2, figsize=(10, 4))
    for name, values, marker in (("WER", [p.wer for p in done], "o"), ("QA accuracy", [p.qa_accuracy for p in done], "s"),
                                 ("held-out cosine (stage 1)", [p.cos_mean for p in done], "^")):
        xs = [r for r, v in zip(rates, values) if v is not None]
        ax_q.plot(xs, [v for v in values if v is not None], marker=marker, label=name)
    ax_q.set_title("Quality vs token rate")
    ax_q.set_xlabel("audio tokens per second")
    ax_q.legend(fontsize=8)
    ax_l.plot(rates, [p.latency_p50_s for p in done], marker="o", label="latency p50")
    ax_l.plot(rates, [p.ttft_p50_s for p in done], marker="s", label="time to first token p50")
    ax_l.set_title("Latency vs token rate")
    ax_l.set_xlabel("audio tokens per second")
    ax_l.set_ylabel("seconds per utterance")
    ax_l.set_ylim(bottom=0)
    ax_l.legend(fontsize=8)
    for ax in (ax_q, ax_l):
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _default_steps(address: str | None, systems: Sequence[str]) -> dict[str, Callable[[AuraConfig], object]]:
    from pipeline.eval.run import run_eval
    from pipeline.precompute import run_precompute
    from pipeline.train.launch import launch

    def precompute(cfg: AuraConfig):
        if address:
            cfg.precompute.address = address
        summary = run_precompute(cfg)
        if not summary.ok:
            raise RuntimeError(summary.describe())
        return summary.computed > 0

    return {
        "precompute": precompute,
        "distill": lambda cfg: launch(cfg, stage="distill", fresh=True, address=address),
        "tasks": lambda cfg: launch(cfg, stage="tasks", fresh=True, address=address),
        # The bridge and the cascade do not read the student's tokens: only AuRA changes with pooling.
        "eval": lambda cfg: run_eval(cfg, systems=systems, train_bridge_mode="never"),
    }


def _done(cfg: AuraConfig, step: str) -> bool:
    """Whether ``step``'s output exists (``--skip-done``)."""
    if step in ("distill", "tasks"):
        return RunLayout.of(cfg).student(step).is_file()
    if step == "eval":
        return (Path(cfg.paths.reports) / "report.json").is_file()
    return False  # precompute is incremental by itself


def run_token_rate(cfg: AuraConfig, poolings: Sequence[int], out_dir: Path | None = None, skip_done: bool = False,
                   address: str | None = None, systems: Sequence[str] = ("aura",),
                   steps: dict[str, Callable[[AuraConfig], object]] | None = None) -> list[TokenRatePoint]:
    """Run every pooling factor's point and write the table and plot; see the module docstring."""
    steps = steps if steps is not None else _default_steps(address, systems)
    out_dir = Path(out_dir) if out_dir is not None else Path(cfg.paths.reports)
    points: list[TokenRatePoint] = []
    for i, pooling in enumerate(poolings, start=1):
        point = TokenRatePoint(pooling, frame_rate_hz(pooling), root=str(point_root(cfg, pooling)))
        points.append(point)
        point_cfg = point_config(cfg, pooling)
        print(f"\n=== token rate {i}/{len(poolings)}: pooling {pooling} ({point.tokens_per_second:g} audio tokens/s) "
              f"-> {point.root}", flush=True)
        reused = 0
        times_file = Path(point.root) / "step_seconds.json"  # so a reused stage keeps its measured time
        point.seconds = json.loads(times_file.read_text()) if times_file.is_file() else {}
        for step in STEPS:
            if skip_done and _done(point_cfg, step):
                reused += 1
                continue
            started = time.perf_counter()
            worked = None
            try:
                worked = steps[step](point_cfg)
            except Exception as exc:  # noqa: BLE001 - one failed point must not end the job
                point.status, point.error = "failed", f"{step}: {type(exc).__name__}: {exc}"
                print(f"token rate pooling {pooling} failed at {point.error}", file=sys.stderr, flush=True)
                break
            finally:
                if worked is not False or step not in point.seconds:  # False: nothing to do (store complete)
                    point.seconds[step] = round(time.perf_counter() - started, 1)
                    times_file.parent.mkdir(parents=True, exist_ok=True)
                    times_file.write_text(json.dumps(point.seconds))
        else:
            point.status = "reused" if reused == len(STEPS) - 1 else "ok"  # precompute always runs
        collect(point, point_cfg, systems[0])
        write_table(points, out_dir)
    csv_path, md_path = write_table(points, out_dir)
    plot(points, out_dir / "token_rate.png")
    (out_dir / "token_rate.json").write_text(json.dumps([asdict(p) for p in points], indent=1))
    print(md_path.read_text())
    print(f"token-rate table: {md_path} and {csv_path}; plot: {out_dir / 'token_rate.png'}")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.token_rate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--poolings", type=int_list, required=True, help="pooling factors, e.g. 1,2,4")
    parser.add_argument("--systems", default="aura", help="systems `aura eval` runs per point (first one fills the table)")
    add_job_arguments(parser, "token_rate.md / .csv / .png", "reuse the stages whose outputs already exist")
    args = parser.parse_args(argv)
    cfg = job_config(args, "token_rate")
    if cfg is None:
        return 2
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    points = run_token_rate(cfg, args.poolings, args.out, args.skip_done, args.address, systems)
    return 0 if any(p.status in ("ok", "reused") for p in points) else 1


if __name__ == "__main__":
    sys.exit(main())
