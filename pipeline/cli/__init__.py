"""The ``aura`` command: one subcommand per pipeline stage, all driven by one config.

Every subcommand takes ``--config FILE`` (default ``configs/demo.yaml`` when it exists) and any number
of ``--set section.key=value`` overrides, e.g.::

    aura ingest corpus/manifest.jsonl --config configs/demo.yaml --set ingest.samples_per_shard=16
    aura precompute --config configs/demo.yaml
    aura store status --config configs/demo.yaml

Exit codes (scripts may rely on them): 0 everything succeeded; 1 the job ran but failed, or some of its
inputs failed (each named on stderr, the rest done); 2 a user mistake (bad config, arguments, missing
files or models), reported in one line; 130 interrupted. A closed output pipe (``| head``) stops the
command quietly with 1. ``--debug`` shows the traceback of an unexpected error.

The commands live by concern, each module with its ``cmd_*`` functions and a ``register(add)`` that adds
their arguments; the domain modules they call never import the CLI:

* :mod:`pipeline.cli.train` — ``demo``, ``train``;
* :mod:`pipeline.cli.data` — ``corpus``, ``ingest``, ``precompute``, ``store``;
* :mod:`pipeline.cli.infer` — ``infer-batch``, ``transcribe``, ``ask``, ``export``;
* :mod:`pipeline.cli.evaluate` — ``curve``, ``probe``, ``eval``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pipeline.cli import data, evaluate, infer, train
from pipeline.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command
from pipeline.cluster import VERBOSE_ENV
from pipeline.config import ConfigError, fields_help

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

_JOB_COMMANDS = {"infer": "infer-batch"}  # jobs/<module>.py whose subcommand has another name
COMMAND_SECTIONS = {  # the config sections each command reads (shown by its --help)
    "demo": ["workdir", "models"], "corpus": ["corpus", "models"], "ingest": ["ingest", "paths"],
    "precompute": ["store", "precompute", "models"], "train": ["student", "train"],
    "infer-batch": ["batch", "eval", "models"], "transcribe": ["models", "eval"], "ask": ["models", "eval"],
    "export": ["models", "paths"], "curve": ["eval", "paths"], "probe": ["student", "eval"],
    "eval": ["eval", "models", "paths"], "store": ["paths", "store"],
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aura-pipeline")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _TerminalFormatter(logging.Formatter):
    """A progress notice (INFO) as its message alone; anything else with its level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO:
            return record.getMessage()
        return f"{record.levelname} {record.name}: {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else "")


def build_parser(job: str | None = None) -> argparse.ArgumentParser:
    """The ``aura`` parser; ``job`` names the subcommand that ``python -m jobs.<job>`` runs, for its usage line."""
    parser = argparse.ArgumentParser(prog="aura", description="AuRA: teach a text LLM to hear (arXiv 2606.11033)",
                                     epilog="exit codes: 0 success; 1 the job or some of its inputs failed; "
                                            "2 a user mistake (config, arguments, missing files)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the notices of Ray, Ray Train and DeepSpeed (hidden otherwise)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    parser.add_argument("--version", action="version", version=f"aura {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help: str) -> argparse.ArgumentParser:
        prog = {"prog": f"python -m jobs.{job}"} if name == _JOB_COMMANDS.get(job, job) else {}
        # The config fields a command reads, with defaults and descriptions, close its --help.
        p = sub.add_parser(name, help=help, description=help, epilog=fields_help(COMMAND_SECTIONS[name]),
                           formatter_class=argparse.RawDescriptionHelpFormatter, **prog)
        p.add_argument("--config", type=Path, default=None, help="YAML config (default: configs/demo.yaml)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
        p.set_defaults(func=func)
        return p

    # in the order of the data flow: audio -> shards -> teacher states -> training -> inference -> evaluation
    for commands in (train, data, infer, evaluate):
        commands.register(add)
    return parser


def main(argv: list[str] | None = None, job: str | None = None) -> int:
    """Run ``aura ARGV``; ``job`` is set by ``python -m jobs.<job>`` (see :func:`build_parser`)."""
    parser = build_parser(job)
    args = parser.parse_args(argv)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    handler = logging.StreamHandler()
    handler.setFormatter(_TerminalFormatter())
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    if not args.verbose:
        # Libraries that log housekeeping at INFO (matplotlib's "generated new fontManager") stay off the terminal.
        for name in ("matplotlib", "PIL", "filelock", "urllib3", "fsspec"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from feature_store import FingerprintMismatch
    from pipeline.models.sources import ModelSourceError

    try:
        return args.func(args)
    except (ConfigError, FingerprintMismatch, ModelSourceError, FileNotFoundError) as exc:  # user mistakes
        if args.debug:
            raise
        print(f"aura: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("aura: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`aura store status | head -2`): stop quietly, as shell tools do; output
        # still buffered for the closed pipe must not fail again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"aura: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILED

