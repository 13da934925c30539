"""The ``aura`` command: one subcommand per pipeline stage, all driven by one config.

Every subcommand takes ``--config FILE`` (default ``configs/demo.yaml`` when it exists) and any number
of ``--set section.key=value`` overrides, e.g.::

    aura ingest corpus/manifest.jsonl --config configs/demo.yaml --set ingest.samples_per_shard=16
    aura precompute --config configs/demo.yaml
    aura store status --config configs/demo.yaml
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipeline.config import AuraConfig, ConfigError, load_config

DEFAULT_CONFIG = Path("configs/demo.yaml")


def _config(args: argparse.Namespace) -> AuraConfig:
    path = args.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_config(path, args.set)


def cmd_corpus(args: argparse.Namespace) -> int:
    cfg = _config(args)
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

    cfg = _config(args)
    out = Path(args.out) if args.out else cfg.paths.shards
    summary = ingest(args.input, out, cfg.ingest)
    print(summary.describe())
    print(f"shards: {out}  (rejects report: {out / 'rejects.jsonl'})")
    return 0


def cmd_precompute(args: argparse.Namespace) -> int:
    from pipeline.precompute import run_precompute

    cfg = _config(args)
    if args.address:
        cfg.precompute.address = args.address
    summary = run_precompute(cfg)
    print(summary.describe())
    return 0 if summary.ok else 1


def cmd_store(args: argparse.Namespace) -> int:
    from pipeline.precompute import open_store_for

    cfg = _config(args)
    store = open_store_for(cfg, mode="r")
    if args.action == "status":
        from feature_store import status
        from pipeline.data.shards import ShardSet

        report = status(store, ShardSet(cfg.paths.shards).shard_names())
        print(json.dumps(report, indent=2, default=str))
        return 0
    from feature_store import verify

    report = verify(store)
    print(report.describe() if hasattr(report, "describe") else report)
    if args.repair and not report.ok:
        for name in report.damaged:
            store.uncommit(name)
        print(f"uncommitted {len(report.damaged)} damaged shard group(s); run `aura precompute` to recompute them")
    return 0 if report.ok else 1


def cmd_train(args: argparse.Namespace) -> int:
    from feature_store import FingerprintMismatch
    from pipeline.train.data import TrainingDataError
    from pipeline.train.launch import RunExistsError, launch

    cfg = _config(args)
    cfg.train.stage = args.stage
    try:
        result = launch(cfg, stage=args.stage, resume=args.resume, fresh=args.fresh, address=args.address)
    except (RunExistsError, FingerprintMismatch, TrainingDataError, FileNotFoundError) as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return 2
    print(f"training ({args.stage}) finished: metrics, checkpoints and export under {result.run_dir}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    run_demo(_config(args), fresh=args.fresh)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aura", description="AuRA: teach a text LLM to hear (arXiv 2606.11033)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
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
    p.add_argument("--stage", choices=["distill", "tasks"], default="distill")
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    p.add_argument("--fresh", action="store_true", help="delete this stage's run folder and start over")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")

    from pipeline.export import add_export_arguments, cmd_export
    from pipeline.infer import add_ask_arguments, add_transcribe_arguments, cmd_ask, cmd_transcribe

    add_transcribe_arguments(add("transcribe", cmd_transcribe, "encoder-free transcription of audio files (JSONL out)"))
    add_ask_arguments(add("ask", cmd_ask, "encoder-free answers to a prompt about audio files (JSONL out)"))
    add_export_arguments(add("export", cmd_export, "export the trained student: merged LLM + patch embedding, or a peft adapter"))

    from pipeline.eval.run import add_eval_arguments, cmd_eval

    add_eval_arguments(add("eval", cmd_eval, "held-out evaluation of AuRA vs bridge, cascade and text-only: report.md + plots"))

    p = add("store", cmd_store, "inspect the feature store")
    p.add_argument("action", choices=["status", "verify"])
    p.add_argument("--repair", action="store_true", help="with verify: uncommit damaged groups so precompute redoes them")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a store made for another config: one clear line, not a traceback
        from feature_store import FingerprintMismatch

        if not isinstance(exc, FingerprintMismatch):
            raise
        print(f"aura: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
