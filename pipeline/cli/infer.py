"""``aura transcribe | ask | export | infer-batch``: the trained, encoder-free student at work.

``transcribe``/``ask`` answer files named on the command line (JSONL out, :mod:`pipeline.requests`);
``infer-batch`` runs a Ray job over a manifest or shards (:mod:`pipeline.batch`); ``export`` ships the
student (:mod:`pipeline.export`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from pipeline.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, AddCommand
from pipeline.config import AuraConfig, config_from_args

if TYPE_CHECKING:  # torch and the models load when a command runs, not for --help
    from pipeline.infer import EncoderFreeModel


def _add_request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="+", help="audio files or folders of audio (any rate; mono or stereo)")
    parser.add_argument("--out", default=None, help="JSONL file to write (default: print JSON lines to stdout)")
    parser.add_argument("--batch-size", type=int, default=8, help="files decoded together (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: eval.max_new_tokens of the config")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--export", default=None, help="trained student.safetensors (default: the latest under "
                        "<checkpoints>/{tasks,distill}/export/)")
    source.add_argument("--merged", default=None, help="an `aura export --merged` folder (no config or LLM spec needed)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: a GPU if there is one)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="default: bfloat16 on a GPU, float32 on CPU")
    parser.add_argument("--read-out", choices=["auto", "generate", "ctc"], default="auto",
                        help="generate: the LLM answers after the audio; ctc: the student's CTC head transcribes and "
                        "the LLM answers from that text; auto (default): ctc when the student has a CTC head")


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``aura transcribe AUDIO... [--out results.jsonl] [--batch-size N]``."""
    _add_request_arguments(parser)


def add_ask_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``aura ask AUDIO... --prompt TEXT [--out results.jsonl]``."""
    _add_request_arguments(parser)
    parser.add_argument("--prompt", required=True, help="the instruction that follows the audio in the user turn")


def load_model_for(args: argparse.Namespace, cfg: AuraConfig) -> EncoderFreeModel:
    """The model a request command asked for: ``--merged DIR``, else ``--export`` / the config's latest export."""
    from pipeline.infer import EncoderFreeModel

    if getattr(args, "merged", None):
        from pipeline.export import load_merged

        return load_merged(args.merged, device=args.device, dtype=args.dtype)
    return EncoderFreeModel.from_config(cfg, export_path=args.export, device=args.device, dtype=args.dtype)


def run_requests(args: argparse.Namespace, instruction: str) -> int:
    """Shared body of ``aura transcribe`` and ``aura ask``: 0 when every file was answered, 1 when any failed
    (each failure is named on stderr and has its JSON line with an ``error``; the other files are answered)."""
    from tqdm import tqdm

    from pipeline.requests import answer_files, expand_audio_paths

    cfg = config_from_args(args)
    paths = expand_audio_paths(args.audio)
    max_new_tokens = args.max_new_tokens or cfg.eval.max_new_tokens
    try:
        model = load_model_for(args, cfg)
    except FileNotFoundError as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        read_out = model.read_out(args.read_out)
    except ValueError as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sink = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    ok = failed = 0
    try:
        with tqdm(total=len(paths), unit="file", disable=len(paths) < 2, file=sys.stderr) as bar:
            for record in answer_files(model, paths, instruction, ingest=cfg.ingest, batch_size=args.batch_size,
                                       max_new_tokens=max_new_tokens, read_out=read_out,
                                       on_progress=bar.update):
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                if "error" in record:
                    failed += 1
                    bar.write(f"aura: {record['file']}: {record['error']}", file=sys.stderr)
                else:
                    ok += 1
    finally:
        if sink is not sys.stdout:
            sink.close()
    print(f"aura: {ok} answered, {failed} failed" + (f"; results in {args.out}" if args.out else ""), file=sys.stderr)
    return EXIT_OK if ok and not failed else EXIT_FAILED


def cmd_transcribe(args: argparse.Namespace) -> int:
    """``aura transcribe AUDIO...``: one JSON line per file with its transcript (or its error)."""
    from pipeline.prompts import instruction_for

    return run_requests(args, instruction_for("transcribe"))


def cmd_ask(args: argparse.Namespace) -> int:
    """``aura ask AUDIO... --prompt TEXT``: one JSON line per file with the answer (or its error)."""
    return run_requests(args, args.prompt)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``aura export --merged DIR`` / ``--adapter DIR`` (both may be given)."""
    parser.add_argument("--merged", default=None, metavar="DIR", help="write the LLM with LoRA merged + patch embedding")
    parser.add_argument("--adapter", default=None, metavar="DIR", help="write the peft adapter + patch embedding")
    parser.add_argument("--export", default=None, help="trained student.safetensors (default: the latest under "
                        "<checkpoints>/{tasks,distill}/export/)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="dtype of the written weights (default: float32)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing non-empty folders")


def cmd_export(args: argparse.Namespace) -> int:
    """``aura export``: merged model and/or peft adapter from the latest trained student."""
    import torch

    from pipeline.export import ExportError, export_adapter, export_merged
    from pipeline.infer import EncoderFreeModel, trained_export_path
    from pipeline.runtime import ensure_mask_attention, resolve_dtype
    from pipeline.models.sources import load_llm
    from pipeline.models.student import AuraStudent

    if not args.merged and not args.adapter:
        print("aura export: give --merged DIR and/or --adapter DIR", file=sys.stderr)
        return EXIT_USAGE
    cfg = config_from_args(args)
    try:
        path = Path(args.export) if args.export else trained_export_path(cfg)
        dtype = resolve_dtype(args.dtype, torch.device("cpu"))
        llm, tokenizer = load_llm(cfg.models.llm, cfg.models.cache_dir, dtype=dtype,
                                  trust_remote_code=cfg.models.trust_remote_code)
        ensure_mask_attention(llm)
        student = AuraStudent.load(llm, path).eval()
        provenance = {"llm_spec": cfg.models.llm, "source_export": str(path)}
        if args.adapter:  # before merging: the adapter needs the LoRA layers
            export_adapter(student, tokenizer, args.adapter, llm_spec=cfg.models.llm, overwrite=args.overwrite)
            print(f"adapter export: {args.adapter}")
        if args.merged:
            model = EncoderFreeModel.from_student(student, tokenizer, merge=True, metadata=provenance)
            export_merged(model, args.merged, overwrite=args.overwrite)
            print(f"merged export: {args.merged}")
    except (FileNotFoundError, ExportError) as exc:
        print(f"aura export: {exc}", file=sys.stderr)
        return EXIT_FAILED
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


def add_infer_batch_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``aura infer-batch SOURCE --out DIR``."""
    p.add_argument("source", help="a .jsonl/.parquet manifest (rows with `audio`, optional `key`, `task`, "
                                  "`instruction`), a folder of audio files, or a folder of ingested shards")
    p.add_argument("--out", required=True, type=Path, help="output folder: plan, part files, results.parquet; "
                                                           "re-running with the same folder resumes")
    from pipeline.batch import BATCH_SYSTEMS

    p.add_argument("--system", choices=list(BATCH_SYSTEMS), default="aura",
                   help="aura: the encoder-free student, generating (default); aura_ctc: the same student's CTC "
                   "read-out; cascade/bridge: the baselines, for comparison")
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


def register(add: AddCommand) -> None:
    """The inference commands and their arguments."""
    add_infer_batch_arguments(add("infer-batch", cmd_infer_batch, "a Ray job: the trained student (or a baseline) "
                                  "answers every request of a manifest, audio folder or shard folder; resumable "
                                  "parquet out"))
    add_transcribe_arguments(add("transcribe", cmd_transcribe, "encoder-free transcription of audio files (JSONL out)"))
    add_ask_arguments(add("ask", cmd_ask, "encoder-free answers to a prompt about audio files (JSONL out)"))
    add_export_arguments(add("export", cmd_export, "export the trained student: merged LLM + patch embedding, "
                                                   "or a peft adapter"))
