"""What the experiment jobs (:mod:`jobs.sweep`, :mod:`jobs.token_rate`) share: their command line's
config / output / resume flags, the config they load, and small readers of a run's CSV logs."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from pipeline.config import AuraConfig, ConfigError, load_config

DEFAULT_CONFIG = Path("configs/demo.yaml")


def add_job_arguments(parser: argparse.ArgumentParser, outputs: str, skip_done_help: str) -> None:
    """``--config``, ``--set``, ``--out`` (folder for ``outputs``), ``--skip-done`` and ``--address``."""
    parser.add_argument("--config", type=Path, default=None, help=f"YAML config (default: {DEFAULT_CONFIG})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    parser.add_argument("--out", type=Path, default=None, help=f"folder for {outputs} (default: paths.reports)")
    parser.add_argument("--skip-done", action="store_true", help=skip_done_help)
    parser.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")


def job_config(args: argparse.Namespace, prog: str) -> AuraConfig | None:
    """The job's config (``--config`` or the demo config, then ``--set``); ``None`` after printing why not."""
    config = args.config
    if config is None and DEFAULT_CONFIG.exists():
        config = DEFAULT_CONFIG
    try:
        return load_config(config, args.set)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def int_list(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` for argparse (positive integers only)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def last_row(path: Path) -> dict[str, str] | None:
    """The last row of a run's ``metrics.csv`` / ``eval.csv``, or ``None`` when it has none."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows[-1] if rows else None
