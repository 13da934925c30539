"""Students' CTC read-outs on the same clips, paired: is one really ahead, or is the gap noise?

Every student transcribes the same transcription clips of a split through its CTC head; the gap in corpus WER
between each student and the first comes with a 95 % interval from a paired bootstrap over utterances (the
same resampled clips for both), and the share of clips where it makes fewer / more word errors.

    python -m benchmarks.paired_ctc --config configs/student.yaml --split heldout --samples 200 \\
        --export own=runs/.../own.safetensors --export shifted=runs/.../shifted.safetensors

Each student's transcript of each clip is kept (``WORKDIR/paired_ctc_cache``, one JSON file per export file's
content and read-out settings), so a later pairing that names the same student again reads only the clips it has not
read before: a release paired with three candidates in turn is read once. The cache knows the weights and the
settings, not the code: after a change to the read-out itself, pass ``--no-cache`` (or delete the folder).
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def paired_gap(errors_a: np.ndarray, errors_b: np.ndarray, words: np.ndarray, draws: int = 2000,
               seed: int = 0) -> dict[str, float]:
    """Corpus-WER gap ``b - a`` over utterances with ``errors_*`` word errors of ``words`` reference words each,
    with its paired-bootstrap 95 % interval.

    >>> gap = paired_gap(np.array([2, 2, 2, 2]), np.array([1, 1, 1, 1]), np.array([4, 4, 4, 4]))
    >>> gap["gap"], gap["low"], gap["high"], gap["fewer_errors"]
    (-0.25, -0.25, -0.25, 1.0)
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(words), size=(draws, len(words)))
    gaps = (errors_b[picks].sum(1) - errors_a[picks].sum(1)) / words[picks].sum(1)
    return {"gap": float((errors_b.sum() - errors_a.sum()) / words.sum()),
            "low": float(np.quantile(gaps, 0.025)), "high": float(np.quantile(gaps, 0.975)),
            "fewer_errors": float(np.mean(errors_b < errors_a)), "more_errors": float(np.mean(errors_b > errors_a))}


def cache_file(cache_dir: Path, export: Path, settings: dict) -> Path:
    """Where one student's transcripts are kept: named by the export file's bytes and the read-out's ``settings``
    (the config's model, student and eval sections, the CTC search), so a retrained or repacked export, or another
    decoding, never reads another's transcripts.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.safetensors").write_bytes(b"weights")
    >>> one = cache_file(folder, folder / "a.safetensors", {"beam": 1})
    >>> one == cache_file(folder, folder / "a.safetensors", {"beam": 1}), one == cache_file(folder, folder / "a.safetensors", {"beam": 4})
    (True, False)
    """
    from pipeline.fs import file_sha256

    digest = hashlib.sha256()
    file_sha256(export, digest)
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return cache_dir / f"{digest.hexdigest()[:32]}.json"


def transcripts(clip_ids: Sequence[str], read: Callable[[str], str], cache: Path | None, desc: str = "") -> list[str]:
    """Each clip's transcript: from ``cache`` (a JSON object, clip id -> text) where it has one, else ``read(clip_id)``
    (a progress bar counts these), which is then added to it, written atomically."""
    from tqdm import tqdm

    from pipeline.fs import atomic_write_text

    known = json.loads(cache.read_text(encoding="utf-8")) if cache is not None and cache.is_file() else {}
    missing = [c for c in clip_ids if c not in known]
    for clip_id in tqdm(missing, desc=desc, unit="utt", disable=not missing):
        known[clip_id] = read(clip_id)
    if cache is not None and missing:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps(known, ensure_ascii=False, sort_keys=True))
    return [known[c] for c in clip_ids]


def main(argv: list[str] | None = None) -> int:
    from pipeline.config import load_config
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import word_error_rate
    from pipeline.infer import EncoderFreeModel
    from pipeline.models.ctc import CTCSearch
    from pipeline.prompts import target_for
    from pipeline.train.data import TrainingData, spread_evenly

    p = argparse.ArgumentParser(prog="python -m benchmarks.paired_ctc", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--export", action="append", required=True, help="NAME=PATH of a student with a CTC head; "
                   "the first is the one the others are compared with")
    p.add_argument("--search", action="append", default=[], help="NAME=BEAM,LM_WEIGHT,LENGTH_BONUS: that export's "
                   "CTC read-out decodes with this beam search (pipeline.models.ctc.CTCSearch) instead of the config's "
                   "eval.ctc_*; the same file under two names compares two decodings")
    p.add_argument("--split", default="dev", choices=["dev", "heldout"])
    p.add_argument("--samples", type=int, default=200, help="transcription clips, spread over the split")
    p.add_argument("--shards", default=None, help="clips from this shard set instead of the config's "
                   "(e.g. an unseen-voice dev set, python -m benchmarks.unseen_voice_dev)")
    p.add_argument("--voices", default=None, help="only clips of voices that start with one of these, comma-separated "
                   "(e.g. kokoro: or kokoro:jf_alpha,kokoro:jm_kumo)")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    p.add_argument("--cache", default=None, help="folder of the kept transcripts (default: WORKDIR/paired_ctc_cache)")
    p.add_argument("--no-cache", action="store_true", help="read every clip again and keep nothing")
    args = p.parse_args(argv)

    cfg = load_config(args.config)
    data = TrainingData(ShardSet(args.shards or cfg.paths.shards), None, split=args.split, tasks=["transcribe"])
    prefixes = tuple(args.voices.split(",")) if args.voices else ("",)
    keys = [k for k in data.keys() if str(data.rows[k].get("speaker") or "").startswith(prefixes)]
    if not keys:
        raise SystemExit(f"no {args.split} transcription clips of voices {args.voices!r}")
    keys = spread_evenly(keys, args.samples)
    references = [target_for(data.rows[k]) for k in keys]
    words = np.array([word_error_rate([r], [""]).reference_words for r in references])
    results: dict = {"split": args.split, "shards": args.shards, "voices": args.voices, "clips": len(keys), "reference_words": int(words.sum()), "students": {}}
    errors = {}
    searches = {}
    for spec in args.search:
        name, values = spec.split("=", 1)
        beam, lm_weight, length_bonus = values.split(",")
        searches[name] = CTCSearch(int(beam), float(lm_weight), float(length_bonus))
    cache_dir = None if args.no_cache else Path(args.cache or Path(cfg.workdir) / "paired_ctc_cache")
    shard_root = Path(args.shards or cfg.paths.shards).resolve()
    clip_ids = [f"{shard_root}::{k}" for k in keys]  # a shard set's key names one clip: ingest never rewrites one
    for spec in args.export:
        name, path = spec.split("=", 1)
        model = EncoderFreeModel.from_config(cfg, export_path=path)
        if name in searches:
            model.ctc_search = searches[name]
        settings = {"ctc_search": asdict(model.ctc_search),
                    **cfg.model_dump(mode="json", include={"models", "student", "store", "eval"})}
        cache = cache_file(cache_dir, Path(path), settings) if cache_dir is not None else None
        by_id = dict(zip(clip_ids, keys))
        heard = transcripts(clip_ids, lambda c: model.ctc_transcribe([np.asarray(data.audio(by_id[c]), dtype=np.float32)])[0].text,
                            cache, desc=f"{args.split}: {name}")
        per_utt = [word_error_rate([r], [h]) for r, h in zip(references, heard)]
        errors[name] = np.array([w.errors for w in per_utt])
        results["students"][name] = {"export": path, "ctc_search": asdict(model.ctc_search),
                                     "wer": word_error_rate(references, heard).wer,
                                     "examples": [[r, h] for r, h in zip(references[:4], heard[:4])]}
    first, *others = list(errors)
    for name in others:
        results["students"][name]["vs_" + first] = gap = paired_gap(errors[first], errors[name], words)
    for name, r in results["students"].items():
        gap = r.get("vs_" + first)
        versus = (f"  {100 * gap['gap']:+.1f} points vs {first} (95 % {100 * gap['low']:+.1f} .. {100 * gap['high']:+.1f}; "
                  f"fewer errors on {100 * gap['fewer_errors']:.0f} % of clips, more on {100 * gap['more_errors']:.0f} %)"
                  if gap else "")
        print(f"{name:10s} {args.split} CTC WER {100 * r['wer']:.1f} % over {len(keys)} clips{versus}")
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
