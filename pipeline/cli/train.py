"""``aura train`` (one training stage on DeepSpeed workers) and ``aura demo`` (the whole pipeline)."""

from __future__ import annotations

import argparse
import sys

from pipeline.cli.common import EXIT_OK, EXIT_USAGE, AddCommand
from pipeline.config import config_from_args


def cmd_train(args: argparse.Namespace) -> int:
    from feature_store import FingerprintMismatch
    from pipeline.train.data import TrainingDataError
    from pipeline.train.launch import RunExistsError, launch

    cfg = config_from_args(args)
    if args.stage is not None:  # --stage wins over the config's train.stage (--set train.stage=... works too)
        cfg.train.stage = args.stage
    stage = cfg.train.stage
    try:
        result = launch(cfg, stage=stage, resume=args.resume, fresh=args.fresh, address=args.address)
    except (RunExistsError, FingerprintMismatch, TrainingDataError, FileNotFoundError) as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"training ({stage}) finished: metrics, checkpoints and export under {result.run_dir}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    run_demo(config_from_args(args), fresh=args.fresh)
    return EXIT_OK


def register(add: AddCommand) -> None:
    """``demo`` and ``train`` and their arguments."""
    p = add("demo", cmd_demo, "the whole pipeline on the embedded default (local Ray, bundled models)")
    p.add_argument("--fresh", action="store_true", help="delete the demo's workdir and start over")

    p = add("train", cmd_train, "train the student with DeepSpeed workers (Ray Train, or under torchrun/deepspeed)")
    p.add_argument("--stage", choices=["distill", "tasks"], default=None,
                   help="distill: stage 1 (layer-wise distillation); tasks: stage 2 (speech tasks); "
                        "default: the config's train.stage")
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    p.add_argument("--fresh", action="store_true", help="delete this stage's run folder and start over")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")
