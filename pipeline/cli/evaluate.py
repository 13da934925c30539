"""``aura eval | probe | curve``: how well a student hears, each number beside a trivial baseline.

``eval`` runs AuRA and its baselines on the held-out split and writes the report (:mod:`pipeline.eval.run`);
``probe`` lets Whisper's decoder read a stage-1 student (:mod:`pipeline.eval.probe`); ``curve`` scores every
checkpoint of a stage (:mod:`pipeline.eval.curves`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.common import EXIT_OK, EXIT_USAGE, AddCommand
from pipeline.config import config_from_args
from pipeline.layout import RunLayout


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``aura eval`` (``--config``/``--set`` are added by the CLI)."""
    from pipeline.eval import DEFAULT_SYSTEMS, SYSTEMS

    p.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                   help=f"comma-separated systems to evaluate, of {','.join(SYSTEMS)} (default: "
                   f"{','.join(DEFAULT_SYSTEMS)})")
    p.add_argument("--max-samples", type=int, default=None, help="held-out utterances to use (default: eval.max_samples)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: a GPU if there is one)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="default: bfloat16 on a GPU, float32 on CPU")
    p.add_argument("--export", default=None, help="AuRA student.safetensors (default: tasks export, else distill)")
    p.add_argument("--bridge", default=None, help="bridge projector file (default: <checkpoints>/bridge/projector.safetensors)")
    p.add_argument("--train-bridge", choices=["auto", "always", "never"], default="auto",
                   help="train the bridge projector when missing (auto), always, or never")
    p.add_argument("--bridge-steps", type=int, default=None, help="default: train.max_steps (AuRA's stage-2 budget)")
    p.add_argument("--bridge-batch-size", type=int, default=None,
                   help="default: train.batch_size x train.num_workers (AuRA's stage-2 global batch)")
    p.add_argument("--bridge-stack", type=int, default=4, help="teacher frames stacked per bridge token (default: 4)")
    p.add_argument("--dataset", action="append", default=[], metavar="FORMAT:PATH[:AUDIO_DIR]",
                   help="also evaluate a local spoken-QA set: sdqa:PATH or heysquad:PATH[:AUDIO_DIR] (repeatable)")
    p.add_argument("--with-context", action="store_true", help="external sets: put the text context in the prompt")
    p.add_argument("--no-cosine", action="store_true", help="skip the per-layer cosine of the student heads")
    p.add_argument("--out", default=None, help="report folder (default: paths.reports)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_eval(args: argparse.Namespace) -> int:
    """``aura eval``: evaluate on the held-out split and write report.md, report.json and plots."""
    from pipeline.eval.run import run_eval
    from pipeline.runtime import torch_threads

    cfg = config_from_args(args)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    try:
        with torch_threads(cfg.eval.num_threads):  # the evaluation runs alone: every core by default
            results = run_eval(cfg, systems=systems, max_samples=args.max_samples, device=args.device, dtype=args.dtype,
                               export_path=args.export, projector_path=args.bridge, train_bridge_mode=args.train_bridge,
                               bridge_steps=args.bridge_steps, bridge_batch_size=args.bridge_batch_size,
                               bridge_stack=args.bridge_stack, datasets=args.dataset, with_context=args.with_context,
                               out_dir=args.out, cosine=not args.no_cosine, progress=not args.no_progress)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(Path(results["report"]["markdown"]).read_text())
    print(f"report: {results['report']['markdown']}  (plots and report.json beside it)")
    return EXIT_OK


def add_probe_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``aura probe``."""
    p.add_argument("--export", type=Path, default=None,
                   help="a student file (default: the stage-1 export, checkpoints/distill/export/student.safetensors)")
    p.add_argument("--split", choices=["dev", "heldout"], default="dev", help="utterances to probe (default: dev)")
    p.add_argument("--max-samples", type=int, default=200, help="utterances, spread over the split (default 200)")
    p.add_argument("--out", type=Path, default=None, help="write the full result as JSON here")


def cmd_probe(args: argparse.Namespace) -> int:
    """``aura probe``: probe WER and per-layer cosine of a stage-1 student, beside the trivial baselines."""
    from pipeline.eval.probe import format_probe, probe_export

    cfg = config_from_args(args)
    export = args.export or RunLayout.of(cfg).student("distill")
    if not Path(export).is_file():
        raise FileNotFoundError(f"no student file at {export}; train stage 1 first (`aura train --stage distill`)")
    result = probe_export(cfg, export, split=args.split, max_samples=args.max_samples)
    print(format_probe(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return EXIT_OK


def add_curve_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``aura curve``."""
    p.add_argument("--stage", choices=["distill", "tasks"], default="tasks", help="the stage whose checkpoints to read")
    p.add_argument("--max-samples", type=int, default=200, help="held-out requests per point (default 200)")
    p.add_argument("--steps", default=None, help="comma-separated checkpoint steps (default: all)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <workdir>/reports)")


def cmd_curve(args: argparse.Namespace) -> int:
    """``aura curve``: held-out WER and QA accuracy of every checkpoint of a stage (table + plot)."""
    from pipeline.eval.curves import learning_curve, write_curves

    cfg = config_from_args(args)
    steps = [int(s) for s in args.steps.split(",")] if args.steps else None
    curve = learning_curve(cfg, RunLayout.of(cfg).stage_dir(args.stage), args.max_samples, steps)
    paths = write_curves(curve, args.out or cfg.paths.reports, name=f"learning_curve_{args.stage}")
    print(paths["md"].read_text())
    print(f"wrote {paths['png']}")
    return EXIT_OK


def register(add: AddCommand) -> None:
    """The evaluation commands and their arguments."""
    add_curve_arguments(add("curve", cmd_curve, "learning curve: held-out WER and QA accuracy of every checkpoint "
                                                "of a stage against the examples it had seen (table + plot)"))
    add_probe_arguments(add("probe", cmd_probe, "Whisper's decoder reads a student's prediction of the teacher's last "
                                                "layer: probe WER and per-layer cosine, each beside trivial baselines"))
    add_eval_arguments(add("eval", cmd_eval, "held-out evaluation of AuRA vs bridge, cascade and text-only: "
                                             "report.md + plots"))
