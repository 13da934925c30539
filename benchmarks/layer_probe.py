"""Where a new voice's sounds are lost: letter probes on each depth of the student and of its teacher (issue 13).

The released student reads voices it never heard at ~47-50 % character error, its training voices at ~34 %, from
any head on its CTC layer (``benchmarks/results/character_ctc``); Whisper, its teacher, hears both alike. Where does
the gap open: in the patch embedding (depth 0), in the LLM layers the LoRA adapts, or is it already in the teacher's
states the student is distilled towards? A fresh :class:`pipeline.models.ctc.CharacterCTCHead` is trained on the
frozen states of each depth, all side by side on the same clips in the same order (AdamW, warm-up and cosine): the
student's audio positions after a transcription prompt (:meth:`pipeline.infer.EncoderFreeModel.audio_states`; 0 is
the patch embedding's tokens) and the teacher's encoder layers, pooled as the store holds them
(:class:`pipeline.models.teacher.WhisperTeacher`). Each probe then spells each evaluation set (greedy CTC path); the
character error rate (jiwer, after :func:`pipeline.eval.metrics.normalize_text`) per set, and each new-voice set's gap
to dev (the training voices), are what it prints::

    python -m benchmarks.layer_probe --config configs/student_hibari_morph.yaml \\
        --export runs/releases/30830d9.safetensors --out benchmarks/results/layer_probe/release_30830d9.json
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import random
import time

import numpy as np

from benchmarks.ctc_vocabulary import add_probe_arguments, evaluation_sets, warmup_cosine


def parse_layers(text: str) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]`` (sorted, each once).

    >>> parse_layers("8, 0,4,4")
    [0, 4, 8]
    """
    return sorted({int(part) for part in text.split(",") if part.strip()})


def voice_gaps(cer: dict[str, dict[str, float]], reference: str = "dev") -> dict[str, dict[str, float]]:
    """Each probe's character error rate on every other set minus its rate on ``reference``.

    >>> voice_gaps({"student 8": {"dev": 0.34, "unseen": 0.48}})
    {'student 8': {'unseen': 0.14}}
    """
    return {probe: {name: round(rate - rates[reference], 6) for name, rate in rates.items() if name != reference}
            for probe, rates in cer.items()}


def main(argv: list[str] | None = None) -> int:
    import jiwer
    import torch
    from tqdm import tqdm

    from pipeline.config import load_config
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import normalize_text
    from pipeline.infer import EncoderFreeModel
    from pipeline.models.ctc import CharacterCTCHead, ctc_greedy_ids, ctc_token_loss
    from pipeline.models.teacher import WhisperTeacher, window_options
    from pipeline.prompts import spoken_text, target_for
    from pipeline.store import open_store_for, teacher_fingerprint
    from pipeline.train.data import TrainingData

    p = argparse.ArgumentParser(prog="python -m benchmarks.layer_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="its corpus's train split trains the probes; its teacher is probed")
    p.add_argument("--export", required=True, help="the student whose states are probed")
    p.add_argument("--student-layers", type=parse_layers, default=parse_layers("0,2,4,6,8"),
                   help="student depths to probe (0: the patch embedding's tokens; '' for none)")
    p.add_argument("--teacher-layers", type=parse_layers, default=None,
                   help="teacher encoder layers to probe (default: the store's, the ones distilled)")
    p.add_argument("--standardise-teacher", action="store_true",
                   help="standardise each channel of the teacher's states with the store's training-split "
                        "statistics (as the distillation targets are) before its probe; a few of Whisper's channels "
                        "are far larger than the rest, yet the probes read the standardised states worse "
                        "(benchmarks/results/layer_probe)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=16, help="training clips per step")
    p.add_argument("--lr", type=float, default=2e-3)
    add_probe_arguments(p, "each probe's CTC frames per state")
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    cfg = load_config(args.config)
    model = EncoderFreeModel.from_config(cfg, export_path=args.export)
    fingerprint = teacher_fingerprint(cfg)
    teacher_layers = args.teacher_layers or list(fingerprint.layers)
    teacher = WhisperTeacher.from_spec(cfg.models.teacher, cfg.models.cache_dir, layers=teacher_layers,
                                       pooling=fingerprint.pooling, trust_remote_code=cfg.models.trust_remote_code,
                                       **window_options(fingerprint))
    teacher_stats = open_store_for(cfg).target_stats() if args.standardise_teacher else None
    student_width = model.llm.config.hidden_size
    probes = {**{f"student {m}": CharacterCTCHead(student_width, upsample=args.upsample) for m in args.student_layers},
              **{f"teacher {j}": CharacterCTCHead(teacher.width, upsample=args.upsample) for j in teacher_layers}}
    optimizers = {name: torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.0)
                  for name, head in probes.items()}

    def states_of(audios: list[np.ndarray]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Every probe's input, ``(batch, states, width)`` zero padded, and each clip's number of states."""
        inputs = {}
        with torch.no_grad():
            if args.student_layers:
                student_states, lengths, _ = model.audio_states(audios, args.student_layers)
                inputs = {f"student {m}": (student_states[m].float(), lengths) for m in args.student_layers}
            encoded = teacher.encode(audios)   # per clip (layers, frames, width)
        frames = torch.tensor([e.shape[1] for e in encoded])
        if teacher_stats is not None:
            encoded = [teacher_stats.standardise(e.astype(np.float32), teacher_layers) for e in encoded]
        for row, j in enumerate(teacher_layers):
            padded = torch.zeros(len(audios), int(frames.max()), teacher.width)
            for b, e in enumerate(encoded):
                padded[b, : e.shape[1]] = torch.from_numpy(np.asarray(e[row], dtype=np.float32))
            inputs[f"teacher {j}"] = (padded, frames)
        return inputs

    train = TrainingData(ShardSet(cfg.paths.shards), None, split="train")
    keys = train.keys()
    curve = []
    start = time.perf_counter()
    for step in tqdm(range(args.steps), desc=f"training {len(probes)} probes", unit="step"):
        batch = train.load(rng.sample(keys, args.batch), with_targets=False)
        labels = [CharacterCTCHead.labels(spoken_text(row)) for row in batch.rows]
        inputs = states_of([a.numpy() for a in batch.audio])
        losses = {}
        for name, head in probes.items():
            for group in optimizers[name].param_groups:
                group["lr"] = args.lr * warmup_cosine(step, args.steps, 50)
            states, lengths = inputs[name]
            loss = ctc_token_loss(head(states), head.frame_lengths(lengths), labels)
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            losses[name] = float(loss.detach())
        if step % 25 == 0 or step == args.steps - 1:
            curve.append({"step": step, **losses})
    train_seconds = time.perf_counter() - start

    cer: dict[str, dict[str, float]] = {name: {} for name in probes}
    examples: dict[str, dict[str, list]] = {name: {} for name in probes}
    clips = {}
    for set_name, data, chosen in evaluation_sets(args.sets, cfg.paths.shards):
        clips[set_name] = len(chosen)
        references = [normalize_text(target_for(data.rows[k])) for k in chosen]
        heard: dict[str, list[str]] = {name: [] for name in probes}
        for i in tqdm(range(0, len(chosen), 8), desc=set_name, unit="batch"):
            inputs = states_of([np.asarray(data.audio(k), dtype=np.float32) for k in chosen[i:i + 8]])
            with torch.no_grad():
                for name, head in probes.items():
                    states, lengths = inputs[name]
                    paths = ctc_greedy_ids(head(states), head.frame_lengths(lengths))
                    heard[name] += [head.text(ids) for ids in paths]
        for name, spelt in heard.items():
            cer[name][set_name] = jiwer.cer(references, [normalize_text(h) for h in spelt])
            examples[name][set_name] = [[r, h] for r, h in zip(references[:2], spelt[:2])]
    gaps = voice_gaps(cer) if all("dev" in rates for rates in cer.values()) else {}
    save_results(args.out, {"export": args.export, "config": args.config, "teacher": cfg.models.teacher,
                            "teacher_standardised": teacher_stats is not None, "steps": args.steps,
                            "batch": args.batch, "lr": args.lr, "upsample": args.upsample,
                            "train_seconds": round(train_seconds, 1), "clips": clips, "cer": cer,
                            "gap_to_dev": gaps, "curve": curve, "examples": examples})
    for name in probes:
        print(f"{name}: " + "; ".join(f"{s} CER {100 * v:.1f} %" for s, v in cer[name].items())
              + ("; gap to dev " + ", ".join(f"{s} {100 * v:+.1f}" for s, v in gaps[name].items()) if gaps else ""),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
