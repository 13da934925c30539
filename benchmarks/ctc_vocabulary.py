"""Characters or LLM tokens: two CTC read-outs trained on one frozen student's states, side by side (issue 13).

The released student's CTC head spells SmolLM2's tokens (49,152 of them, each a word or a piece of one), so a word
it has not heard must be put together from tokens learnt on other words. A character head
(:class:`pipeline.models.ctc.CharacterCTCHead`, ``student.ctc_vocabulary: characters``) spells 26 letters and the
space from the same states. Which reads new voices better? Here a fresh head of each vocabulary is trained on the
same student's frozen CTC-layer states (:meth:`pipeline.infer.EncoderFreeModel.ctc_states`; the same clips in the
same order, the same steps and schedule, AdamW), and then every read-out, the student's own head beside the two
fresh ones, transcribes each evaluation set (greedy CTC path): word and character error rates (jiwer, after
:func:`pipeline.eval.metrics.normalize_text`), and the WER gap of each fresh head against the student's own head,
paired on the same clips (95 % bootstrap)::

    python -m benchmarks.ctc_vocabulary --config configs/student_hibari_morph.yaml \\
        --export runs/releases/30830d9.safetensors --steps 500 \\
        --out benchmarks/results/ctc_vocabulary/release_30830d9.json
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import math
import random
import time

import numpy as np

DEFAULT_SETS = ("unseen=runs/speech/unseen_voice_dev/shards:1000", "dectalk=runs/speech/dectalk_dev/shards:1000",
                "dev=:200")


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """The learning rate's factor at ``step``: linear warm-up, then a cosine to zero at ``steps``.

    >>> [round(warmup_cosine(s, 100, 10), 2) for s in (0, 9, 10, 55, 100)]
    [0.1, 0.98, 0.98, 0.42, 0.0]
    """
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))


def add_probe_arguments(parser: argparse.ArgumentParser, upsample_help: str) -> None:
    """The options of a benchmark that trains fresh read-outs on a frozen student (this one, ``benchmarks.layer_probe``):
    the character heads' CTC frames per state, the evaluation sets, the seed and the JSON to write."""
    parser.add_argument("--upsample", type=int, default=3, help=upsample_help)
    parser.add_argument("--set", action="append", dest="sets", default=None,
                        help="NAME=SHARDS:CLIPS, dev clips of a shard set (SHARDS empty: the config's); default: "
                             + ", ".join(DEFAULT_SETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")


def evaluation_sets(specs: list[str] | None, default_shards):
    """``(name, data, keys)`` for each ``NAME=SHARDS:CLIPS`` of ``specs`` (default :data:`DEFAULT_SETS`): the set's dev
    transcription clips, ``CLIPS`` of them spread evenly over it."""
    from pipeline.data.shards import ShardSet
    from pipeline.train.data import TrainingData, spread_evenly

    for spec in specs or DEFAULT_SETS:
        name, rest = spec.split("=", 1)
        shards, clips = rest.rsplit(":", 1)
        data = TrainingData(ShardSet(shards or default_shards), None, split="dev", tasks=["transcribe"])
        yield name, data, spread_evenly(data.keys(), int(clips))


def main(argv: list[str] | None = None) -> int:
    import jiwer
    import torch
    from tqdm import tqdm

    from benchmarks.paired_ctc import paired_gap
    from pipeline.config import load_config
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import normalize_text, word_error_rate
    from pipeline.infer import EncoderFreeModel
    from pipeline.models.ctc import CharacterCTCHead, TokenCTCHead, ctc_greedy_ids, ctc_token_loss
    from pipeline.prompts import spoken_text, target_for
    from pipeline.train.data import TrainingData

    p = argparse.ArgumentParser(prog="python -m benchmarks.ctc_vocabulary", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="its corpus's train split trains the heads")
    p.add_argument("--export", required=True, help="the student whose CTC-layer states are read (with a CTC head)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch", type=int, default=16, help="training clips per step")
    p.add_argument("--token-lr", type=float, default=1e-3)
    p.add_argument("--character-lr", type=float, default=2e-3)
    add_probe_arguments(p, "the character head's CTC frames per audio token")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    cfg = load_config(args.config)
    model = EncoderFreeModel.from_config(cfg, export_path=args.export)
    lm_head = model.llm.get_output_embeddings()
    width = model.llm.config.hidden_size
    heads = {"tokens": TokenCTCHead(width), "characters": CharacterCTCHead(width, upsample=args.upsample)}
    optimizers = {"tokens": torch.optim.AdamW(heads["tokens"].parameters(), lr=args.token_lr, weight_decay=0.0),
                  "characters": torch.optim.AdamW(heads["characters"].parameters(), lr=args.character_lr,
                                                  weight_decay=0.0)}
    peak = {"tokens": args.token_lr, "characters": args.character_lr}

    train = TrainingData(ShardSet(cfg.paths.shards), None, split="train")
    keys = train.keys()
    curve = []
    start = time.perf_counter()
    for step in tqdm(range(args.steps), desc="training both heads", unit="step"):
        batch = train.load(rng.sample(keys, args.batch), with_targets=False)
        with torch.no_grad():
            states, lengths, _ = model.ctc_states([a.numpy() for a in batch.audio])
        texts = [spoken_text(row) for row in batch.rows]
        losses = {}
        for name, head in heads.items():
            for group in optimizers[name].param_groups:
                group["lr"] = peak[name] * warmup_cosine(step, args.steps, 50)
            loss = ctc_token_loss(head(states, lm_head), head.frame_lengths(lengths),
                                  [head.labels(t, model.tokenizer) for t in texts])
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            losses[name] = float(loss.detach())
        if step % 25 == 0 or step == args.steps - 1:
            curve.append({"step": step, **{f"loss_{n}": v for n, v in losses.items()}})
    train_seconds = time.perf_counter() - start

    results: dict = {"export": args.export, "config": args.config, "steps": args.steps, "batch": args.batch,
                     "lr": peak, "upsample": args.upsample, "train_seconds": round(train_seconds, 1),
                     "curve": curve, "sets": {}}
    read_outs = {"own head": model.ctc_head, "tokens": heads["tokens"], "characters": heads["characters"]}
    for name, data, chosen in evaluation_sets(args.sets, cfg.paths.shards):
        references = [target_for(data.rows[k]) for k in chosen]
        heard: dict[str, list[str]] = {r: [] for r in read_outs}
        for i in tqdm(range(0, len(chosen), 8), desc=name, unit="batch"):
            audios = [np.asarray(data.audio(k), dtype=np.float32) for k in chosen[i:i + 8]]
            with torch.no_grad():
                states, lengths, _ = model.ctc_states(audios)
                for read_out, head in read_outs.items():
                    paths = ctc_greedy_ids(head(states, lm_head), head.frame_lengths(lengths))
                    heard[read_out] += [head.text(ids, model.tokenizer) for ids in paths]
        words = np.array([word_error_rate([r], [""]).reference_words for r in references])
        errors = {r: np.array([word_error_rate([ref], [h]).errors for ref, h in zip(references, hs)])
                  for r, hs in heard.items()}
        normalised = [normalize_text(r) for r in references]
        row = {"clips": len(chosen), "read_outs": {}}
        for read_out, hs in heard.items():
            row["read_outs"][read_out] = {
                "wer": word_error_rate(references, hs).wer,
                "cer": jiwer.cer(normalised, [normalize_text(h) for h in hs]),
                "examples": [[r, h] for r, h in zip(references[:3], hs[:3])]}
            if read_out != "own head":
                row["read_outs"][read_out]["vs_own_head"] = paired_gap(errors["own head"], errors[read_out], words)
        results["sets"][name] = row
        print(f"{name} ({len(chosen)} clips): " + "; ".join(
            f"{r} WER {100 * v['wer']:.1f} % CER {100 * v['cer']:.1f} %" for r, v in row["read_outs"].items()),
            flush=True)
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
