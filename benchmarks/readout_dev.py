"""The two read-outs of one student side by side on the development split (never the held-out one): WER of the
generated transcript vs the CTC head's, and spoken-QA accuracy answering after the audio vs from the CTC transcript.
It is how ``--read-out auto`` was chosen; a student without a CTC head is measured on ``generate`` alone.

    python -m benchmarks.readout_dev --config configs/student.yaml --export runs/.../student.safetensors --samples 100
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from pipeline.config import load_config
    from pipeline.data.shards import ShardSet
    from pipeline.eval.metrics import qa_accuracy, word_error_rate
    from pipeline.infer import EncoderFreeModel
    from pipeline.prompts import instruction_for, target_for
    from pipeline.train.data import TrainingData

    p = argparse.ArgumentParser(prog="python -m benchmarks.readout_dev", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--export", required=True)
    p.add_argument("--samples", type=int, default=100, help="dev utterances per task")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    cfg = load_config(args.config)
    data = TrainingData(ShardSet(cfg.paths.shards), None, split="dev", tasks=["transcribe", "spoken_qa"])
    rows = {task: [data.rows[k] for k in data.keys() if (data.rows[k].get("task") or "transcribe") == task][:args.samples]
            for task in ("transcribe", "spoken_qa")}
    model = EncoderFreeModel.from_config(cfg, export_path=args.export)
    read_outs = ["generate"] + (["ctc"] if model.ctc_head is not None else [])
    results: dict = {"export": args.export, "samples_per_task": {t: len(r) for t, r in rows.items()}}
    for read_out in read_outs:
        out = {}
        for task, task_rows in rows.items():
            started, predictions = time.perf_counter(), []
            for row in tqdm(task_rows, desc=f"dev {task}: {read_out}", unit="utt"):
                audio = np.asarray(data.audio(row["key"]), dtype=np.float32)
                predictions.append(model.answer([audio], [instruction_for(task)], cfg.eval.max_new_tokens, read_out)[0].text)
            references = [target_for(r) for r in task_rows]
            if task == "transcribe":
                out["wer"] = word_error_rate(references, predictions).wer
            else:
                out["qa_accuracy"] = qa_accuracy(predictions, [[a] for a in references]).accuracy
            out[f"{task}_s_per_utt"] = (time.perf_counter() - started) / max(1, len(task_rows))
            out[f"{task}_examples"] = [[r, h] for r, h in zip(references[:3], predictions[:3])]
        results[read_out] = out
        print(f"{read_out:8s} dev WER {100 * out['wer']:.1f} %  QA {100 * out['qa_accuracy']:.1f} %  "
              f"({out['transcribe_s_per_utt']:.2f} / {out['spoken_qa_s_per_utt']:.2f} s per utterance)")
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
