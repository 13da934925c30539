"""A speaker shift chosen at inference: does warping a new voice toward the training voices help the student? (issue 13)

Vocal-tract-length normalisation picks, per utterance, the warp under which the model finds the audio most likely.
Here each clip is read by the student's CTC head once per shift of a grid (Praat's *Change gender*: formants ×
``--formants``, pitch median × ``--pitches``; :func:`pipeline.data.augment.apply_speaker_shift`), and the transcript of
the shift the head is most confident about (mean over audio tokens of the best token's log-probability) is taken;
or the transcript the other shifts' transcripts agree with most (the fewest word edits to them all: a
minimum-Bayes-risk choice over the grid, as ROVER-style system combination makes). Reported beside every fixed shift,
the unshifted read-out (paired with each chosen one over the clips) and the oracle (per clip the shift with the fewest
errors: an upper bound that any noise in the read-out also lowers). Meant for the unseen-voice dev set
(``benchmarks.unseen_voice_dev``), not the held-out split::

    python -m benchmarks.shift_search --config configs/student.yaml --shards runs/speech/unseen_voice_dev/shards \\
        --samples 200 --out benchmarks/results/voice_gap/shift_search.json
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import itertools
from collections import Counter

import numpy as np


def floats(text: str) -> list[float]:
    """``"0.9,1,1.1"`` -> ``[0.9, 1.0, 1.1]``."""
    return [float(x) for x in text.split(",")]


def agreed_transcript(transcripts: list[str]) -> int:
    """The index of the transcript with the fewest word edits to all the others (ties: the first).

    >>> agreed_transcript(["the cat sat", "a cat sat", "the cat sat down", "dog"])
    0
    """
    from pipeline.eval.metrics import word_error_rate

    def edits(reference: str, hypothesis: str) -> int:
        counted = word_error_rate([reference], [hypothesis])
        # a reference with no words after normalisation is skipped by the metric: every word heard against it is one
        return counted.errors if counted.reference_words else word_error_rate([hypothesis], [""]).reference_words

    return int(np.argmin([sum(edits(other, mine) for other in transcripts) for mine in transcripts]))


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm import tqdm

    from benchmarks.paired_ctc import paired_gap
    from pipeline.config import load_config
    from pipeline.data.augment import SpeakerShift, apply_speaker_shift
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import word_error_rate
    from pipeline.infer import EncoderFreeModel
    from pipeline.models.ctc import ctc_greedy_ids
    from pipeline.prompts import target_for
    from pipeline.train.data import TrainingData, spread_evenly

    p = argparse.ArgumentParser(prog="python -m benchmarks.shift_search", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--export", default=None, help="the student (default: the workdir's trained one, else the release)")
    p.add_argument("--shards", default=None, help="clips from this shard set instead of the config's")
    p.add_argument("--split", default="dev", choices=["dev", "heldout"])
    p.add_argument("--samples", type=int, default=200, help="transcription clips, spread over the split")
    p.add_argument("--formants", type=floats, default=[0.85, 0.92, 1.0, 1.08, 1.16], help="formant ratios")
    p.add_argument("--pitches", type=floats, default=[0.7, 1.0, 1.4], help="pitch-median factors")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    cfg = load_config(args.config)
    data = TrainingData(ShardSet(args.shards or cfg.paths.shards), None, split=args.split, tasks=["transcribe"])
    keys = spread_evenly(data.keys(), args.samples)
    references = [target_for(data.rows[k]) for k in keys]
    model = EncoderFreeModel.from_config(cfg, export_path=args.export)
    grid = list(itertools.product(args.formants, args.pitches))
    unshifted = grid.index((1.0, 1.0))  # the plain read-out is one point of the grid
    heard, confidence = [], []  # per clip, per shift
    with torch.inference_mode():
        for i, key in enumerate(tqdm(keys, desc="read every shift", unit="utt")):
            audio = np.asarray(data.audio(key), dtype=np.float32)
            variants = [audio if g == grid[unshifted] else apply_speaker_shift(audio, SpeakerShift(*g, seed=i))
                        for g in grid]
            log_probs, lengths = model.ctc_log_probs(variants)
            ids = ctc_greedy_ids(log_probs, lengths)
            heard.append([model.ctc_head.text(t, model.tokenizer) for t in ids])
            confidence.append([float(log_probs[b, : int(n)].max(-1).values.mean()) for b, n in enumerate(lengths)])
    errors = np.array([[word_error_rate([r], [h]).errors for h in row] for r, row in zip(references, heard)])
    words = np.array([word_error_rate([r], [""]).reference_words for r in references])
    chosen = np.array(confidence).argmax(1)
    agreed = np.array([agreed_transcript(row) for row in heard])
    rows = np.arange(len(keys))
    results = {"clips": len(keys), "shards": args.shards, "split": args.split, "reference_words": int(words.sum()),
               "fixed": {f"formant {f} pitch {q}": float(errors[:, j].sum() / words.sum()) for j, (f, q) in enumerate(grid)},
               "chosen_by_confidence": float(errors[rows, chosen].sum() / words.sum()),
               "chosen_vs_unshifted": paired_gap(errors[:, unshifted], errors[rows, chosen], words),
               "chosen_by_agreement": float(errors[rows, agreed].sum() / words.sum()),
               "agreement_vs_unshifted": paired_gap(errors[:, unshifted], errors[rows, agreed], words),
               "oracle": float(errors.min(1).sum() / words.sum()),
               "baseline_the_of_the": word_error_rate(references, ["the of the"] * len(references)).wer,
               "chosen_shifts": {f"formant {grid[j][0]} pitch {grid[j][1]}": n for j, n in Counter(chosen.tolist()).most_common()}}
    for name, wer in results["fixed"].items():
        print(f"{name:22s} CTC WER {100 * wer:.1f} %")
    gap = results["chosen_vs_unshifted"]
    print(f"chosen by confidence   CTC WER {100 * results['chosen_by_confidence']:.1f} % ({100 * gap['gap']:+.1f} points "
          f"vs unshifted, 95 % {100 * gap['low']:+.1f} .. {100 * gap['high']:+.1f}); oracle {100 * results['oracle']:.1f} %; "
          f"\"the of the\" {100 * results['baseline_the_of_the']:.1f} %")
    gap = results["agreement_vs_unshifted"]
    print(f"chosen by agreement    CTC WER {100 * results['chosen_by_agreement']:.1f} % ({100 * gap['gap']:+.1f} points "
          f"vs unshifted, 95 % {100 * gap['low']:+.1f} .. {100 * gap['high']:+.1f})")
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
