"""``aura corpus | ingest | precompute | store``: the data side, from audio to the teacher's feature store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AddCommand
from pipeline.config import config_from_args


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
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from pipeline.data.ingest import ingest

    cfg = config_from_args(args)
    out = Path(args.out) if args.out else cfg.paths.shards
    summary = ingest(args.input, out, cfg.ingest)
    print(summary.describe())
    print(f"shards: {out}  (rejects report: {out / 'rejects.jsonl'})")
    return EXIT_OK


def cmd_precompute(args: argparse.Namespace) -> int:
    from pipeline.precompute import run_precompute

    cfg = config_from_args(args)
    if args.address:
        cfg.precompute.address = args.address
    summary = run_precompute(cfg)
    print(summary.describe())
    return EXIT_OK if summary.ok else EXIT_FAILED


def status_lines(report: dict) -> list[str]:
    """``aura store status`` as a person reads it (``--json`` gives the whole report)."""

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
        print(json.dumps(report, indent=2, default=str) if args.json else "\n".join(status_lines(report)))
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


def register(add: AddCommand) -> None:
    """The data commands and their arguments."""
    p = add("corpus", cmd_corpus, "synthesize a speech corpus: corpus.builder multi-engine (training speech at scale) "
                                   "or espeak-templates (the tiny demo corpus)")
    p.add_argument("--out", default=None, help="output folder (default: <workdir>/corpus)")

    p = add("ingest", cmd_ingest, "audio folder or JSONL/parquet manifest -> webdataset shards + manifest.parquet")
    p.add_argument("input", help="a folder of audio with <stem>.txt transcripts, or a .jsonl/.parquet manifest")
    p.add_argument("--out", default=None, help="shards folder (default: <workdir>/shards)")

    p = add("precompute", cmd_precompute, "run the Whisper teacher in a Ray job and fill the zarr feature store")
    p.add_argument("--address", default=None, help="Ray cluster address to join (default: start a local Ray)")

    p = add("store", cmd_store, "inspect the feature store")
    p.add_argument("action", choices=["status", "verify"],
                   help="status: counts, sizes, pending shards; verify: check every committed chunk's checksum")
    p.add_argument("--store", type=Path, default=None, help="the store to inspect (default: the config's paths.store)")
    p.add_argument("--repair", action="store_true", help="with verify: uncommit damaged groups so precompute redoes them")
    p.add_argument("--json", action="store_true", help="with status: the full report as JSON")
