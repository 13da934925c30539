"""Does the CTC read-out delete words because the blank wins too often? A penalty on the blank, swept.

The released student's CTC read-out loses most of its words to deletions (held-out: 527 of 1,640 reference words).
Here one student's CTC log-probabilities are computed once per clip, then read by the greedy path with
``penalty`` nats taken off the blank's log-probability in every frame (a blank penalty, as in NeMo's and k2's
decoders), for each penalty given: corpus WER and its deletions, insertions and substitutions per setting.

    python -m benchmarks.ctc_blank_penalty --config configs/student.yaml --export runs/releases/0dea27e.safetensors \\
        --shards runs/speech/unseen_voice_dev/shards --split dev --samples 220 --penalties 0,0.5,1,2
"""

from __future__ import annotations

from benchmarks import save_results

import argparse

import torch

from pipeline.models.ctc import CTC_BLANK, ctc_greedy_ids


def greedy_with_blank_penalty(log_probs: torch.Tensor, penalty: float) -> list[int]:
    """The greedy CTC path of one clip's ``(frames, 1 + vocabulary)`` log-probabilities with ``penalty`` nats off the
    blank in every frame; LLM token ids.

    >>> frames = torch.log(torch.tensor([[0.6, 0.4, 0.0], [0.6, 0.0, 0.4]]))   # blank, token 0, token 1
    >>> greedy_with_blank_penalty(frames, 0.0), greedy_with_blank_penalty(frames, 1.0)
    ([], [0, 1])
    """
    penalised = log_probs.clone()
    penalised[:, CTC_BLANK] -= penalty
    return ctc_greedy_ids(penalised[None], torch.tensor([len(penalised)]))[0]


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from tqdm import tqdm

    from pipeline.config import load_config
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import word_error_rate
    from pipeline.infer import EncoderFreeModel
    from pipeline.prompts import target_for
    from pipeline.train.data import TrainingData, spread_evenly

    p = argparse.ArgumentParser(prog="python -m benchmarks.ctc_blank_penalty", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--export", required=True, help="a student with a CTC head")
    p.add_argument("--split", default="dev", choices=["dev", "heldout"])
    p.add_argument("--samples", type=int, default=220, help="transcription clips, spread over the split")
    p.add_argument("--shards", default=None, help="clips from this shard set instead of the config's")
    p.add_argument("--penalties", default="0,0.5,1,1.5,2,3", help="comma-separated blank penalties (nats)")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    cfg = load_config(args.config)
    data = TrainingData(ShardSet(args.shards or cfg.paths.shards), None, split=args.split, tasks=["transcribe"])
    keys = spread_evenly(list(data.keys()), args.samples)
    references = [target_for(data.rows[k]) for k in keys]
    model = EncoderFreeModel.from_config(cfg, export_path=args.export)
    log_probs = []
    for key in tqdm(keys, desc=f"{args.split}: CTC log-probabilities", unit="utt"):
        frames, lengths = model.ctc_log_probs([np.asarray(data.audio(key), dtype=np.float32)])
        log_probs.append(frames[0, : int(lengths[0])].float())
    results: dict = {"export": args.export, "split": args.split, "shards": args.shards, "clips": len(keys),
                     "settings": []}
    for penalty in (float(v) for v in args.penalties.split(",")):
        heard = [model.ctc_head.text(greedy_with_blank_penalty(lp, penalty), model.tokenizer)
                 for lp in log_probs]
        score = word_error_rate(references, heard)
        results["settings"].append({"blank_penalty": penalty, "wer": score.wer, "hits": score.hits,
                                    "deletions": score.deletions, "insertions": score.insertions,
                                    "substitutions": score.substitutions})
        print(f"blank penalty {penalty:4.2f}: CTC WER {100 * score.wer:5.1f} % (hits {score.hits}, deletions "
              f"{score.deletions}, insertions {score.insertions}, substitutions {score.substitutions})")
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
