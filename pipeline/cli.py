"""The ``aura`` command: one subcommand per pipeline stage, all driven by one config.

Every subcommand takes ``--config FILE`` (default ``configs/demo.yaml`` when it exists) and any number
of ``--set section.key=value`` overrides, e.g.::

    aura ingest corpus/manifest.jsonl --config configs/demo.yaml --set ingest.samples_per_shard=16
    aura precompute --config configs/demo.yaml
    aura store status --config configs/demo.yaml

Exit codes (scripts may rely on them): 0 everything succeeded; 1 the job ran but failed, or some of its
inputs failed (each named on stderr, the rest done); 2 a user mistake (bad config, arguments, missing
files or models), reported in one line. ``--debug`` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from pipeline.cluster import VERBOSE_ENV
from pipeline.config import ConfigError, config_from_args, fields_help

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_JOB_COMMANDS = {"infer": "infer-batch"}
COMMAND_SECTIONS = {  # the config sections each command reads (shown by its --help)
    "demo": ["workdir", "models"], "corpus": ["corpus", "models"], "ingest": ["ingest", "paths"],
    "precompute": ["store", "precompute", "models"], "train": ["student", "train"],
    "infer-batch": ["batch", "eval", "models"], "transcribe": ["models", "eval"], "ask": ["models", "eval"],
    "export": ["models", "paths"], "curve": ["eval", "paths"], "probe": ["student", "eval"],
    "eval": ["eval", "models", "paths"], "store": ["paths", "store"],
}  # jobs/<module>.py whose subcommand has another name


def cmd_corpus(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = Path(args.out) if args.out else cfg.paths.corpus
    if cfg.corpus.builder == "multi-engine":
        from pipeline.data.speech_corpus import build_speech_corpus

        manifest = build_speech_corpus(out, cfg.corpus, cfg.models)
    else:
        from pipeline.data.corpus import generate_corpus

        manifest = generate_corpus(out, cfg.corpus.num_utterances, seed=cfg.corpus.seed, workers=cfg.corpus.workers)
    print(f"corpus manifest: {manifest}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from pipeline.data.ingest import ingest

    cfg = config_from_args(args)
    out = Path(args.out) if args.out else cfg.paths.shards
    summary = ingest(args.input, out, cfg.ingest)
    print(summary.describe())
    print(f"shards: {out}  (rejects report: {out / 'rejects.jsonl'})")
    return 0


def cmd_precompute(args: argparse.Namespace) -> int:
    from pipeline.precompute import run_precompute

    cfg = config_from_args(args)
    if args.address:
        cfg.precompute.address = args.address
    summary = run_precompute(cfg)
    print(summary.describe())
    return 0 if summary.ok else 1


def _status_lines(report: dict) -> list[str]:
    def size(n) -> str:
        return "-" if n is None else f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"

    lines = [f"shards: {report['shards_committed']} committed, {report['shards_uncommitted']} uncommitted"
             + (f", {report['shards_pending']} pending (not computed yet)" if report.get("shards_pending") is not None else ""),
             f"samples: {report['samples']} ({report['failures']} failed), {report['frames']} frames, "
             f"{report['audio_hours']:.2f} audio hours",
             f"size: {size(report['bytes_on_disk'])} on disk, {size(report['bytes_committed'])} committed"]
    if report.get("pending_shards"):
        shown = report["pending_shards"][:10]
        lines.append("pending: " + ", ".join(shown) + (" ..." if len(report["pending_shards"]) > 10 else ""))
    for lease in report.get("leases") or []:
        lines.append(f"being written: {lease}")
    lines.append("(counts only: `aura store verify` checks every chunk against its checksum)")
    return lines


def cmd_store(args: argparse.Namespace) -> int:
    from pipeline.store import open_store_for

    cfg = config_from_args(args)
    if args.store is not None:
        cfg.paths.store = args.store.absolute()
    if not (cfg.paths.store / "zarr.json").is_file():
        print(f"aura: no feature store at {cfg.paths.store} (run `aura precompute`, or point --store at one)",
              file=sys.stderr)
        return EXIT_USAGE
    store = open_store_for(cfg, mode="a" if args.repair else "r")
    if args.action == "status":
        from feature_store import status
        from pipeline.data.shards import ShardSet

        report = status(store, ShardSet(cfg.paths.shards).shard_names())
        print(json.dumps(report, indent=2, default=str) if args.json else "\n".join(_status_lines(report)))
        return EXIT_OK
    from feature_store import verify

    report = verify(store)
    print(report.summary())
    if args.repair and not report.ok:
        for name in report.damaged:
            store.uncommit(name)
        print(f"uncommitted {len(report.damaged)} damaged shard group(s); run `aura precompute` to recompute them")
        return EXIT_OK
    return EXIT_OK if report.ok else EXIT_FAILED


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


def cmd_infer_batch(args: argparse.Namespace) -> int:
    from pipeline.batch import BatchJobMismatch, run_batch

    cfg = config_from_args(args)
    if args.address:
        cfg.batch.address = args.address
    try:
        summary = run_batch(cfg, args.source, args.out, system=args.system, export=args.export,
                            projector=args.projector, instruction=args.prompt, split=args.split,
                            max_new_tokens=args.max_new_tokens, device=args.device, dtype=args.dtype)
    except (BatchJobMismatch, ValueError) as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary.describe())
    return EXIT_OK if summary.failed == 0 and summary.results else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    run_demo(config_from_args(args), fresh=args.fresh)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aura-pipeline")
    except PackageNotFoundError:
        return "unknown (not installed)"


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

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        prog = {"prog": f"python -m jobs.{job}"} if name == _JOB_COMMANDS.get(job, job) else {}
        # The config fields a command reads, with defaults and descriptions, close its --help.
        p = sub.add_parser(name, help=help, description=help, epilog=fields_help(COMMAND_SECTIONS[name]),
                           formatter_class=argparse.RawDescriptionHelpFormatter, **prog)
        p.add_argument("--config", type=Path, default=None, help="YAML config (default: configs/demo.yaml)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
        p.set_defaults(func=func)
        return p

    p = add("demo", cmd_demo, "the whole pipeline on the embedded default (local Ray, bundled models)")
    p.add_argument("--fresh", action="store_true", help="delete the demo's workdir and start over")

    p = add("corpus", cmd_corpus, "synthesize a speech corpus: corpus.builder multi-engine (training speech at scale) "
                                   "or espeak-templates (the tiny demo corpus)")
    p.add_argument("--out", default=None, help="output folder (default: <workdir>/corpus)")

    p = add("ingest", cmd_ingest, "audio folder or JSONL/parquet manifest -> webdataset shards + manifest.parquet")
    p.add_argument("input", help="a folder of audio with <stem>.txt transcripts, or a .jsonl/.parquet manifest")
    p.add_argument("--out", default=None, help="shards folder (default: <workdir>/shards)")

    p = add("precompute", cmd_precompute, "run the Whisper teacher in a Ray job and fill the zarr feature store")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")

    p = add("train", cmd_train, "train the student with DeepSpeed workers (Ray Train, or under torchrun/deepspeed)")
    p.add_argument("--stage", choices=["distill", "tasks"], default=None,
                   help="distill: stage 1 (layer-wise distillation); tasks: stage 2 (speech tasks); "
                        "default: the config's train.stage")
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    p.add_argument("--fresh", action="store_true", help="delete this stage's run folder and start over")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")

    p = add("infer-batch", cmd_infer_batch, "a Ray job: the trained student (or a baseline) answers every request "
                                            "of a manifest, audio folder or shard folder; resumable parquet out")
    p.add_argument("source", help="a .jsonl/.parquet manifest (rows with `audio`, optional `key`, `task`, "
                                  "`instruction`), a folder of audio files, or a folder of ingested shards")
    p.add_argument("--out", required=True, type=Path, help="output folder: plan, part files, results.parquet; "
                                                           "re-running with the same folder resumes")
    p.add_argument("--system", choices=["aura", "cascade", "bridge"], default="aura",
                   help="aura: the encoder-free student (default); cascade/bridge: the baselines, for comparison")
    p.add_argument("--prompt", default=None, help="one instruction for every request (default: the row's "
                                                  "`instruction`, else the prompt of its `task`, else transcription)")
    p.add_argument("--split", default=None, help="with a shard folder: only this split (e.g. heldout)")
    p.add_argument("--export", default=None, help="trained student.safetensors (default: the latest under "
                                                   "<checkpoints>, else the released student)")
    p.add_argument("--projector", default=None, help="bridge projector (default: <checkpoints>/bridge/projector.safetensors)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: eval.max_new_tokens of the config")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default: a GPU when the worker has one)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="default: bfloat16 on a GPU, float32 on CPU")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")

    from pipeline.export import add_export_arguments, cmd_export
    from pipeline.requests import add_ask_arguments, add_transcribe_arguments, cmd_ask, cmd_transcribe

    add_transcribe_arguments(add("transcribe", cmd_transcribe, "encoder-free transcription of audio files (JSONL out)"))
    add_ask_arguments(add("ask", cmd_ask, "encoder-free answers to a prompt about audio files (JSONL out)"))
    add_export_arguments(add("export", cmd_export, "export the trained student: merged LLM + patch embedding, or a peft adapter"))

    from pipeline.eval.curves import add_curve_arguments, cmd_curve
    from pipeline.eval.probe import add_probe_arguments, cmd_probe
    from pipeline.eval.run import add_eval_arguments, cmd_eval

    add_curve_arguments(add("curve", cmd_curve, "learning curve: held-out WER and QA accuracy of every checkpoint "
                                                "of a stage against the examples it had seen (table + plot)"))
    add_probe_arguments(add("probe", cmd_probe, "Whisper's decoder reads a student's prediction of the teacher's last "
                                                "layer: probe WER and per-layer cosine, each beside trivial baselines"))

    add_eval_arguments(add("eval", cmd_eval, "held-out evaluation of AuRA vs bridge, cascade and text-only: report.md + plots"))

    p = add("store", cmd_store, "inspect the feature store")
    p.add_argument("action", choices=["status", "verify"],
                   help="status: counts, sizes, pending shards; verify: check every committed chunk's checksum")
    p.add_argument("--store", type=Path, default=None, help="the store to inspect (default: the config's paths.store)")
    p.add_argument("--repair", action="store_true", help="with verify: uncommit damaged groups so precompute redoes them")
    p.add_argument("--json", action="store_true", help="with status: the full report as JSON")
    return parser


def main(argv: list[str] | None = None, job: str | None = None) -> int:
    """Run ``aura ARGV``; ``job`` is set by ``python -m jobs.<job>`` (see :func:`build_parser`)."""
    parser = build_parser(job)
    args = parser.parse_args(argv)
    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
    except Exception as exc:  # noqa: BLE001 - one line unless --debug
        if args.debug:
            raise
        print(f"aura: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
