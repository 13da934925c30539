"""``aura transcribe`` / ``aura ask``: the encoder-free model (:mod:`pipeline.infer`) over audio files
and folders, one JSON line per file; a bad file gets an ``error`` line and the others go on.

    aura transcribe clips/*.wav --out transcripts.jsonl --batch-size 8
    aura ask question.wav --prompt "Answer the question asked in the audio with a single word."
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from pipeline.config import AuraConfig, IngestConfig, config_from_args
from pipeline.infer import EncoderFreeModel, GenerationResult
from pipeline.prompts import instruction_for

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Many files -> JSON records
# --------------------------------------------------------------------------------------------------


def expand_audio_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the audio files under them (sorted). Missing paths are kept
    so that they get an error record of their own."""
    from pipeline.data.audio import AUDIO_EXTENSIONS

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            out.extend(found or [path])  # an empty folder is reported, not silently skipped
        else:
            out.append(path)
    return out


def load_request_audio(path: Path, ingest: IngestConfig) -> np.ndarray:
    """16 kHz mono samples of one file, or :class:`AudioRejected` with a reason a person can act on."""
    from pipeline.data.audio import AUDIO_EXTENSIONS, AudioRejected, load_checked

    if path.is_dir():
        raise AudioRejected(f"folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    if not path.exists():
        raise AudioRejected("file not found")
    try:
        return load_checked(path, ingest).samples
    except AudioRejected:
        raise
    except OSError as exc:  # permissions, I/O errors
        raise AudioRejected(f"unreadable: {exc.strerror or exc}") from None


def answer_files(model: EncoderFreeModel, paths: Sequence[str | Path], instruction: str, *,
                 ingest: IngestConfig | None = None, batch_size: int = 8, max_new_tokens: int = 48,
                 on_progress: Callable[[int], None] | None = None) -> Iterator[dict]:
    """Answer ``instruction`` for every file, ``batch_size`` at a time; yields one record per file, in order.

    A good file gives ``{"file", "text", "instruction", "duration_s", "num_audio_tokens", "prompt_tokens",
    "new_tokens", "finish_reason", "latency_s", "time_to_first_token_s", "batch_size"}``; a bad one
    (missing, unreadable, empty, silent, too long: the checks of ``aura ingest``) gives
    ``{"file", "error"}`` and the others go on. A batch that fails as a whole (e.g. out of memory)
    is retried one file at a time.

    >>> for record in answer_files(model, ["a.wav", "missing.wav"], "Transcribe the audio."):   # doctest: +SKIP
    ...     print(record)
    {'file': 'a.wav', 'text': 'hello world', ...}
    {'file': 'missing.wav', 'error': 'file not found'}
    """
    from pipeline.data.audio import AudioRejected

    ingest = ingest or IngestConfig()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for first in range(0, len(paths), batch_size):
        chunk = [Path(p) for p in paths[first:first + batch_size]]
        records: list[dict | None] = [None] * len(chunk)
        good: list[tuple[int, np.ndarray]] = []
        for i, path in enumerate(chunk):
            try:
                good.append((i, load_request_audio(path, ingest)))
            except AudioRejected as exc:
                records[i] = {"file": str(path), "error": exc.reason}
        durations = {i: round(len(audio) / ingest.sample_rate, 3) for i, audio in good}
        for i, result in _generate_robustly(model, good, instruction, max_new_tokens):
            if isinstance(result, GenerationResult):
                records[i] = {"file": str(chunk[i]), "text": result.text, "instruction": instruction,
                              "duration_s": durations[i],
                              **{k: v for k, v in result.to_dict().items() if k != "text"},
                              "batch_size": len(good)}
            else:
                records[i] = {"file": str(chunk[i]), "error": result}
        yield from records
        if on_progress is not None:
            on_progress(len(chunk))


def answer_robustly(answer_batch: Callable[[list[np.ndarray], list[str]], list], audios: list[np.ndarray],
                    instructions: list[str]) -> list:
    """``answer_batch(audios, instructions)``; when the whole batch fails, one request at a time. A request
    that fails alone gets its error text in place of a result."""
    try:
        return answer_batch(audios, instructions)
    except Exception as exc:  # noqa: BLE001 - one bad batch must not end a long job
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(audios) == 1:
            logger.warning("generation failed: %s: %s", type(exc).__name__, exc)
            return [f"generation failed: {type(exc).__name__}: {exc}"]
        logger.warning("batch of %d failed (%s: %s); retrying one request at a time", len(audios), type(exc).__name__, exc)
        return [r for a, i in zip(audios, instructions) for r in answer_robustly(answer_batch, [a], [i])]


def _generate_robustly(model: EncoderFreeModel, good: list[tuple[int, np.ndarray]], instruction: str,
                       max_new_tokens: int) -> list[tuple[int, GenerationResult | str]]:
    if not good:
        return []
    results = answer_robustly(lambda audios, instructions: model.generate(audios, instructions, max_new_tokens),
                              [a for _, a in good], [instruction] * len(good))
    return [(i, r) for (i, _), r in zip(good, results)]


# --------------------------------------------------------------------------------------------------
# CLI: aura transcribe / aura ask
# --------------------------------------------------------------------------------------------------


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


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``aura transcribe AUDIO... [--out results.jsonl] [--batch-size N]``."""
    _add_request_arguments(parser)


def add_ask_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``aura ask AUDIO... --prompt TEXT [--out results.jsonl]``."""
    _add_request_arguments(parser)
    parser.add_argument("--prompt", required=True, help="the instruction that follows the audio in the user turn")


def load_model_for(args: argparse.Namespace, cfg: AuraConfig) -> EncoderFreeModel:
    """The model a request command asked for: ``--merged DIR``, else ``--export`` / the config's latest export."""
    if getattr(args, "merged", None):
        from pipeline.export import load_merged

        return load_merged(args.merged, device=args.device, dtype=args.dtype)
    return EncoderFreeModel.from_config(cfg, export_path=args.export, device=args.device, dtype=args.dtype)


def run_requests(args: argparse.Namespace, instruction: str) -> int:
    """Shared body of ``aura transcribe`` and ``aura ask``: 0 when every file was answered, 1 when any failed
    (each failure is named on stderr and has its JSON line with an ``error``; the other files are answered)."""
    from tqdm import tqdm

    cfg = config_from_args(args)
    paths = expand_audio_paths(args.audio)
    max_new_tokens = args.max_new_tokens or cfg.eval.max_new_tokens
    try:
        model = load_model_for(args, cfg)
    except FileNotFoundError as exc:
        print(f"aura: {exc}", file=sys.stderr)
        return 1
    sink = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    ok = failed = 0
    try:
        with tqdm(total=len(paths), unit="file", disable=len(paths) < 2, file=sys.stderr) as bar:
            for record in answer_files(model, paths, instruction, ingest=cfg.ingest, batch_size=args.batch_size,
                                       max_new_tokens=max_new_tokens, on_progress=bar.update):
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
    return 0 if ok and not failed else 1


def cmd_transcribe(args: argparse.Namespace) -> int:
    """``aura transcribe AUDIO...``: one JSON line per file with its transcript (or its error)."""
    return run_requests(args, instruction_for("transcribe"))


def cmd_ask(args: argparse.Namespace) -> int:
    """``aura ask AUDIO... --prompt TEXT``: one JSON line per file with the answer (or its error)."""
    return run_requests(args, args.prompt)
