"""Batch-inference throughput: the encoder-free AuRA student vs the Whisper -> LLM cascade on the same
manifest, in one run of ``aura infer-batch`` each (same Ray session, same workers and threads).

Throughput is audio hours answered per hour, two ways: end to end (the job's wall time, Ray start and
model loading included: what a user waits for) and per worker-hour inside the parts (decoding only:
what more data would cost). The ratio AuRA / cascade is what to read; this machine is noisy, so both
systems run in one process, one after the other, over the same requests.

The default manifest repeats the released student's held-out example clips (real speech, never
trained on) under distinct keys; ``--manifest`` takes any manifest ``aura infer-batch`` takes.

Usage::

    python -m benchmarks.batch_infer_bench                    # 48 requests, transcription
    python -m benchmarks.batch_infer_bench --requests 200 --workers 2 --threads 1

Writes ``benchmarks/results/batch_infer.md`` (and ``batch_infer.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.batch import run_batch
from pipeline.cluster import init_ray
from pipeline.config import load_config
from pipeline.released import RELEASE_DIR, released_examples

RESULTS = Path(__file__).resolve().parent / "results"
SYSTEMS = ("aura", "cascade")


def example_manifest(folder: Path, requests: int) -> Path:
    """``requests`` rows cycling over the released student's held-out example clips (distinct keys)."""
    examples = released_examples()
    lines = [json.dumps({"audio": str(ex["path"]), "key": f"{ex['key']}-{i:04d}"})
             for i, ex in zip(range(requests), (examples * (requests // len(examples) + 1)))]
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_infer_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml", help="models and batch settings (default: demo)")
    parser.add_argument("--manifest", type=Path, default=None, help="default: the released examples, repeated")
    parser.add_argument("--requests", type=int, default=48, help="rows of the default manifest (default: 48)")
    parser.add_argument("--workers", type=int, default=1, help="model actors per system (default: 1)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per actor (default: 2)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for batch_infer.md/json")
    args = parser.parse_args(argv)

    cfg = load_config(args.config, [f"batch.num_workers={args.workers}", f"batch.threads_per_worker={args.threads}"])
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        manifest = args.manifest or example_manifest(work, args.requests)
        init_ray(cfg.batch.address)  # started once, before both, so neither system's wall time includes it
        summaries = {}
        for system in SYSTEMS:
            print(f"== {system}")
            summary = run_batch(cfg, manifest, work / system, system=system)
            print(summary.describe())
            tokens = pq.read_table(summary.results, columns=["new_tokens"]).column("new_tokens").to_pylist()
            summaries[system] = {**summary.to_dict(),
                                 "mean_new_tokens": round(sum(t or 0 for t in tokens) / max(len(tokens), 1), 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    aura, cascade = summaries["aura"], summaries["cascade"]
    ratios = {key: round(aura[key] / cascade[key], 2) if cascade[key] else None
              for key in ("audio_hours_per_hour", "audio_hours_per_worker_hour")}
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or
              platform.machine(), "config": args.config, "manifest": str(args.manifest or "released examples"),
              "workers": args.workers, "threads": args.threads, "systems": summaries, "aura_over_cascade": ratios}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_infer.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [f"| {name} | {s['answered']} | {s['failed']} | {s['mean_new_tokens']} | {s['audio_s'] / 60:.1f} | {s['wall_s']:.1f} | "
            f"{s['audio_hours_per_hour']:.2f} | {s['audio_hours_per_worker_hour']:.2f} |" for name, s in summaries.items()]
    md = "\n".join([
        "# Batch inference throughput: AuRA vs cascade",
        "",
        f"`python -m benchmarks.batch_infer_bench` on {result['date']}: {args.workers} worker(s) x {args.threads} "
        f"thread(s), {result['manifest']}, {aura['requests']} requests each (transcription). Same process and Ray "
        "session, one system after the other. The cascade's tokens are Whisper's; AuRA's are the student's answer "
        "(it does not transcribe yet: see the README), so read the ratio as the cost of the two paths.",
        "",
        "| system | answered | failed | tokens per answer | audio min | wall s (model load included) | audio h/h (end to end) "
        "| audio h per worker-hour (in parts) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"AuRA / cascade: {ratios['audio_hours_per_hour']}x end to end, {ratios['audio_hours_per_worker_hour']}x "
        "inside the parts.",
        "",
    ])
    (args.out / "batch_infer.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
