"""Is the new voice lost in the teacher's states or in the student's copy of them? A read-out trained on each.

The released student's CTC read-out transcribes its training voices' dev clips far better than the held-out voice.
This separates the two places the voice can be lost, with one read-out trained on the teacher's own states:

* a CTC read-out (``Linear`` into the LLM's width, then :class:`~pipeline.models.ctc.TokenCTCHead` through SmolLM2's
  frozen output embedding, the same head the student has) is trained on the *teacher's* stored states of the last
  distilled layer (prepared as the student's targets: pooled, standardised), training split only;
* it then reads, on the same dev and held-out transcription clips: the teacher's states (``teacher``), and the
  student's prediction of them (``student``, its distillation head for that layer).

If ``teacher`` reads the held-out voice about as well as dev, Whisper's states carry the words of a voice the read-out
never heard, and the gap is the student's (its prediction of those states); if not, the states themselves are
voice-bound at this read-out's training size.

    python -m benchmarks.teacher_readout --config configs/student.yaml --steps 1000 \\
        --export pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors --out readout.json
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import json
import random


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors import safe_open
    from torch import nn
    from tqdm import tqdm

    from pipeline.config import StudentConfig, load_config
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import word_error_rate
    from pipeline.models.ctc import TokenCTCHead, ctc_greedy_ids, ctc_token_loss
    from pipeline.models.sources import load_llm
    from pipeline.models.student import AuraStudent
    from pipeline.prompts import audio_prefix_ids, spoken_text
    from pipeline.store import open_store_for
    from pipeline.train.data import TrainingData, spread_evenly
    from pipeline.train.targets import TargetPreparer

    p = argparse.ArgumentParser(prog="python -m benchmarks.teacher_readout", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--export", required=True, help="the student whose prediction of the teacher's states is read")
    p.add_argument("--steps", type=int, default=1000, help="training steps of the read-out")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--samples", type=int, default=200, help="transcription clips per split, spread over it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    cfg = load_config(args.config)
    store = open_store_for(cfg, mode="r")
    with safe_open(args.export, framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("aura_student", "null"))
    prepare = TargetPreparer(store, StudentConfig.model_validate(meta["student"]))
    layer = max(int(j) for j in meta["layer_map"])
    llm, tokenizer = load_llm(cfg.models.llm, cfg.models.cache_dir, trust_remote_code=cfg.models.trust_remote_code)
    student = AuraStudent.load(llm, args.export).eval()
    lm_head = llm.get_output_embeddings().requires_grad_(False)
    width = llm.config.hidden_size

    shards = ShardSet(cfg.paths.shards)
    train = TrainingData(shards, store, split="train", tasks=["transcribe"])
    train_keys = [k for k in train.keys() if spoken_text(train.rows[k])]

    def ids(row) -> list[int]:
        return tokenizer(spoken_text(row), add_special_tokens=False)["input_ids"]

    def teacher_states(keys):
        targets, lengths = prepare.read(keys)
        return targets[layer], lengths

    teacher_width = teacher_states(train_keys[:1])[0].shape[-1]
    readout = nn.ModuleDict({"proj": nn.Linear(teacher_width, width), "ctc": TokenCTCHead(width)})
    optimizer = torch.optim.AdamW(readout.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    rng = random.Random(args.seed)
    losses = []
    for step in tqdm(range(args.steps), desc="read-out on teacher states", unit="step"):
        keys = rng.sample(train_keys, args.batch)
        states, lengths = teacher_states(keys)
        log_probs = readout["ctc"](readout["proj"](states), lm_head)
        loss = ctc_token_loss(log_probs, lengths, [ids(train.rows[k]) for k in keys])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())

    prefix = audio_prefix_ids(tokenizer)
    results = {"export": args.export, "teacher_layer": layer, "steps": args.steps, "batch": args.batch,
               "train_loss_last_100": sum(losses[-100:]) / len(losses[-100:]), "splits": {}}
    readout.eval()
    for split in ("dev", "heldout"):
        data = TrainingData(shards, store, split=split, tasks=["transcribe"])
        keys = spread_evenly([k for k in data.keys() if spoken_text(data.rows[k])], args.samples)
        references, heard = [], {"teacher": [], "student": []}
        with torch.inference_mode():
            for start in tqdm(range(0, len(keys), 8), desc=f"read {split}", unit="batch"):
                chunk = keys[start:start + 8]
                batch = data.load(chunk, with_targets=False)
                mel, token_lengths = student.patch_embedding.mel_batch(batch.audio)
                predicted = student.forward_distill(mel, token_lengths, prefix_ids=prefix)["layer_states"][layer]
                states, lengths = teacher_states(chunk)
                for name, (x, n) in {"teacher": (states, lengths), "student": (predicted, token_lengths)}.items():
                    best = ctc_greedy_ids(readout["ctc"](readout["proj"](x), lm_head), n)
                    heard[name] += [tokenizer.decode(b, skip_special_tokens=True).strip() for b in best]
                references += [spoken_text(row) for row in batch.rows]
        results["splits"][split] = {
            "clips": len(keys),
            **{f"{name}_wer": word_error_rate(references, hyps).wer for name, hyps in heard.items()},
            "empty_wer": word_error_rate(references, [""] * len(references)).wer,
            "examples": [[r, heard["teacher"][i], heard["student"][i]] for i, r in enumerate(references[:4])],
        }
        r = results["splits"][split]
        print(f"{split:8s} read-out WER on the teacher's states {100 * r['teacher_wer']:.1f} %, on the student's "
              f"prediction {100 * r['student_wer']:.1f} %, empty {100 * r['empty_wer']:.1f} % ({len(keys)} clips)")
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
