"""An unseen-voice dev set: the corpus's dev rows spoken again by voices no training row has.

The dev split's voices are the training voices, so dev says little about the choice that matters most now:
what carries to a *new* voice. The held-out voice answers that, but it must never be tuned against. This set
takes the dev rows (texts and QA facts never trained on), gives each a voice from ``--voices`` (none of them a
training voice, a held-out voice or a reserved one), renders it with the row's
own speed and augmentation, and ingests the clips into their own shards (split ``dev``), so that a choice
(an arm, a checkpoint) can be made on unseen voices without touching held-out::

    python -m benchmarks.unseen_voice_dev --config configs/student.yaml --out runs/speech/unseen_voice_dev
    python -m benchmarks.paired_ctc --config configs/student.yaml --shards runs/speech/unseen_voice_dev/shards \\
        --export a=...safetensors --export b=...safetensors

A training voice is one of the config's corpus (``corpus.voices_in_use()``) or one that a training row of the
workdir's shards has: the trainer reads every committed shard there, so a corpus grown by another config that shares
the workdir (``configs/speech.yaml``'s Kokoro rows) trains on voices the config does not name.

With ``--split train --rows N --untranscribed`` it speaks N training rows instead and leaves their words out of
the manifest: a new voice's untranscribed audio, what a student can be adapted to with the teacher alone
(``student.ctc_weight=0``, ``train.target_stats_from``; ``benchmarks/results/voice_adaptation/``)::

    python -m benchmarks.unseen_voice_dev --config configs/student.yaml --split train --rows 600 --untranscribed \
        --voices kokoro:jf_alpha,kokoro:jf_gongitsune,kokoro:jm_kumo --out runs/speech/voice_adaptation

Run again, it renders and ingests only what is missing. A row an engine cannot speak is listed in
``rejects.jsonl`` (file, key, reason) and left out.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import fields
from pathlib import Path

# Kokoro-82M's five speakers: a neural engine and speakers that configs/student.yaml's 22,000 rows never use
# (configs/speech.yaml's growth speaks rows 24,000 on with them: the voice check refuses them once those rows are ingested).
KOKORO_SPEAKERS = ("kokoro:jf_alpha", "kokoro:jf_gongitsune", "kokoro:jf_nezumi", "kokoro:jf_tebukuro",
                   "kokoro:jm_kumo")
# The voices the project keeps for evaluation only (README): never rendered here.
RESERVED = ("flite", "slt", "awb", "alan", "rms", "kal")


def voices_refused(voices: list[str], trained: set[str], heldout: set[str]) -> dict[str, str]:
    """Each voice of ``voices`` that may not speak an unseen-voice dev set, with the reason.

    >>> voices_refused(["pico:en-US", "pico:en-GB", "festival:kal_diphone", "kokoro:jm_kumo"],
    ...                trained={"pico:en-US"}, heldout={"pico:en-GB"})
    {'pico:en-US': 'a training voice', 'pico:en-GB': 'a held-out voice', 'festival:kal_diphone': 'reserved for evaluation'}
    """
    refused = {}
    for voice in voices:
        if voice in trained:
            refused[voice] = "a training voice"
        elif voice in heldout:
            refused[voice] = "a held-out voice"
        elif any(name in voice.lower() for name in RESERVED):
            refused[voice] = "reserved for evaluation"
    return refused


def voices_trained_on(cfg) -> set[str]:
    """The voices a student trained with ``cfg`` hears: its corpus's and those of the training rows already ingested
    into its workdir's shards (what the trainer reads, whichever config grew it).

    >>> from pipeline.config import AuraConfig
    >>> sorted(voices_trained_on(AuraConfig.model_validate({"workdir": "/nonexistent", "corpus": {
    ...     "builder": "multi-engine", "voices": {"pico:en-US": 1.0}}})))
    ['pico:en-US']
    """
    from pipeline.data.shards import ShardSet

    manifest = ShardSet(cfg.paths.shards).read_manifest().select(["speaker", "split"]).to_pylist()
    return cfg.corpus.voices_in_use() | {r["speaker"] for r in manifest if (r["split"] or "train") == "train"}


def revoice(row: dict, voices: list[str], seed: int) -> dict:
    """``row`` (a corpus manifest row) as spoken by one of ``voices``, drawn from its key: same text, speed and
    augmentation; a new key and audio path; pitch 1.0 for an engine without pitch control.

    >>> row = {"key": "sc0-0000042", "voice": "pico:en-US", "speaker": "pico:en-US", "engine": "pico", "pitch": 1.1,
    ...        "audio": "audio/00000/sc0-0000042.flac"}
    >>> new = revoice(row, ["kokoro:jm_kumo"], seed=0)
    >>> new["key"], new["voice"], new["engine"], new["pitch"], new["audio"]
    ('sc0-0000042-uv', 'kokoro:jm_kumo', 'kokoro', 1.0, 'audio/sc0-0000042-uv.flac')
    """
    from pipeline.data.engines import has_pitch

    voice = random.Random(f"aura-unseen-voice:{seed}:{row['key']}").choice(sorted(voices))
    engine = voice.split(":", 1)[0]
    key = f"{row['key']}-uv"
    return {**row, "key": key, "audio": f"audio/{key}.flac", "voice": voice, "speaker": voice, "engine": engine,
            "pitch": row["pitch"] if has_pitch(engine) else 1.0}


# What a manifest row says in words: left out of an untranscribed set (the audio and how it was made stay).
WORD_FIELDS = ("text", "question", "answer", "target", "qa_family", "qa_fact")


def rows_to_speak(rows: list[dict], split: str, count: int | None, seed: int) -> list[dict]:
    """The corpus rows of ``split``, in manifest order, or ``count`` of them drawn with ``seed`` (same draw each run).

    >>> rows = [{"key": str(i), "split": "train" if i % 2 else "dev"} for i in range(10)]
    >>> [r["key"] for r in rows_to_speak(rows, "dev", None, 0)], len(rows_to_speak(rows, "train", 3, 0))
    (['0', '2', '4', '6', '8'], 3)
    >>> rows_to_speak(rows, "train", 3, 0) == rows_to_speak(rows, "train", 3, 0)
    True
    """
    chosen = [r for r in rows if r["split"] == split]
    if count is None or count >= len(chosen):
        return chosen
    picked = set(random.Random(f"aura-unseen-voice-rows:{seed}").sample(range(len(chosen)), count))
    return [r for i, r in enumerate(chosen) if i in picked]


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from pipeline.config import load_config
    from pipeline.data.engines import get_engine
    from pipeline.data.ingest import ingest
    from pipeline.data.speech_corpus import PlannedSpeech, render_part, manifest_line
    from pipeline.fs import atomic_write_text
    from pipeline.workers import worker_pool

    p = argparse.ArgumentParser(prog="python -m benchmarks.unseen_voice_dev", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the training config (its corpus and its training voices)")
    p.add_argument("--out", required=True, type=Path, help="folder for the audio, manifest.jsonl and shards/")
    p.add_argument("--voices", default=",".join(KOKORO_SPEAKERS), help="comma-separated engine:voice")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: corpus.workers)")
    p.add_argument("--split", default="dev", choices=["dev", "train"], help="the corpus rows to speak again (train: "
                   "audio to adapt a student to the voices, never to judge it)")
    p.add_argument("--rows", type=int, default=None, help="this many of the split's rows, drawn with corpus.seed "
                   "(default: all)")
    p.add_argument("--untranscribed", action="store_true", help="leave each row's words out of the manifest (its "
                   "text, question and answer): audio alone, as a new voice's recordings come")
    args = p.parse_args(argv)

    cfg = load_config(args.config)
    voices = [v for v in args.voices.split(",") if v]
    if refused := voices_refused(voices, voices_trained_on(cfg), set(cfg.corpus.heldout_voices)):
        raise SystemExit("unseen-voice dev set: " + "; ".join(f"{v} is {why}" for v, why in refused.items()))
    for voice in voices:
        engine, engine_voice = voice.split(":", 1) if ":" in voice else (voice, "")
        if engine_voice not in (known := get_engine(engine).voices()):
            raise SystemExit(f"unseen-voice dev set: {engine} has no voice {engine_voice!r} (voices: {', '.join(known)})")
    corpus_manifest = cfg.paths.corpus / "manifest.jsonl"
    if not corpus_manifest.is_file():
        raise SystemExit(f"{corpus_manifest}: no corpus manifest (run `aura corpus --config {args.config}` first)")
    rows = [json.loads(line) for line in corpus_manifest.read_text(encoding="utf-8").splitlines()]
    rows = [revoice(r, voices, cfg.corpus.seed) for r in rows_to_speak(rows, args.split, args.rows, cfg.corpus.seed)]
    names = {f.name for f in fields(PlannedSpeech)}
    planned = [PlannedSpeech(**{k: r[k] for k in names - {"part"}}, part=0) for r in rows]

    args.out.mkdir(parents=True, exist_ok=True)
    chunks = [planned[i:i + 20] for i in range(0, len(planned), 20)]
    lines, rejects = [], []
    with worker_pool(args.workers or cfg.corpus.workers) as pool, \
            tqdm(total=len(planned), desc=f"{args.split} rows in unseen voices", unit="utt") as bar:
        for chunk, results in zip(chunks, pool.map(render_part, chunks, [str(args.out)] * len(chunks))):
            for row, (key, result) in zip(chunk, results):
                if isinstance(result, str):
                    rejects.append({"file": row.audio, "key": key, "reason": result, "voice": row.voice})
                elif args.untranscribed:
                    lines.append(json.dumps({k: v for k, v in json.loads(manifest_line(row, result)).items()
                                             if k not in WORD_FIELDS}, ensure_ascii=False))
                else:
                    lines.append(manifest_line(row, result))
            bar.update(len(chunk))
    atomic_write_text(args.out / "rejects.jsonl", "".join(json.dumps(r) + "\n" for r in rejects))
    atomic_write_text(args.out / "manifest.jsonl", "".join(line + "\n" for line in lines))
    for reject in rejects[:10]:
        print(f"rejected {reject['file']} [key {reject['key']}]: {reject['reason']}")
    if not lines:
        raise SystemExit(f"unseen-voice set: no {args.split} row could be rendered (reasons in {args.out / 'rejects.jsonl'})")
    ingest(args.out / "manifest.jsonl", args.out / "shards",
           cfg.ingest.model_copy(update={"require_text": not args.untranscribed}))
    print(f"{len(lines)} of {len(planned)} {args.split} rows in voices {', '.join(sorted(voices))}"
          f"{' (untranscribed)' if args.untranscribed else ''} -> {args.out / 'shards'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
