"""Do students' generated answers listen? The listening test on the same clips for several exports, paired.

For each clip the answer's loss (nats/token) with the clip's own audio and with another clip's
(:func:`pipeline.eval.probe.listening_test`): a student that listens scores its own audio better (``listen_rate``,
0.5 is chance). Every export reads the same clips (a split's transcriptions and spoken questions spread over it,
or a folder of examples such as the released student's), so two students' answer losses are compared clip by clip,
with a paired-bootstrap 95 % interval of the gap to the first export's.

    python -m benchmarks.listening --config configs/student.yaml --samples 120 \\
        --export release=runs/releases/2925e8b.safetensors --export candidate=runs/.../student.safetensors
"""

from __future__ import annotations

from benchmarks import save_results
from benchmarks.paired_ctc import paired_gap

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from pipeline.cluster import quiet_transformers
    from pipeline.config import load_config
    from pipeline.data.shards import ShardSet
    from pipeline.eval.probe import listening_test
    from pipeline.models.sources import load_llm
    from pipeline.models.student import AuraStudent
    from pipeline.prompts import target_for
    from pipeline.train.data import TrainingData, spread_evenly

    p = argparse.ArgumentParser(prog="python -m benchmarks.listening", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--export", action="append", required=True, metavar="NAME=PATH",
                   help="a student to test (repeat; the first is the one the others are paired with)")
    p.add_argument("--split", default="dev", choices=["dev", "heldout"])
    p.add_argument("--samples", type=int, default=120, help="clips, spread evenly over the split")
    p.add_argument("--examples", type=Path, default=None,
                   help="instead of the split: a folder with examples.jsonl (file, task, reference per clip), e.g. "
                        "the released student's examples/")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    cfg = load_config(args.config, args.set)
    if args.examples is not None:
        import soundfile as sf

        from pipeline.released import examples_in

        rows = examples_in(args.examples)
        audios = [sf.read(r["path"], dtype="float32")[0] for r in rows]
        answers = [r["reference"] for r in rows]
        source = str(args.examples)
    else:
        data = TrainingData(ShardSet(cfg.paths.shards), None, split=args.split, tasks=["transcribe", "spoken_qa"])
        rows = [data.rows[k] for k in spread_evenly(data.keys(), args.samples)]
        audios = [np.asarray(data.audio(r["key"]), dtype=np.float32) for r in rows]
        answers = [target_for(r) for r in rows]
        source = args.split
    tasks = [r.get("task") or "transcribe" for r in rows]
    keys = [r["key"] for r in rows]
    results: dict = {"clips_from": source, "clips": len(keys), "keys": keys, "students": {}}
    first = None
    for spec in args.export:
        name, path = spec.split("=", 1)
        with quiet_transformers():
            llm, tokenizer = load_llm(cfg.models.llm, cfg.models.cache_dir,
                                      trust_remote_code=cfg.models.trust_remote_code)
        student = AuraStudent.load(llm, path).eval()
        test = listening_test(student, tokenizer, audios, tasks, answers)
        own = np.array(test.pop("own"))
        test.pop("other")
        entry = {"export": path, **test}
        line = (f"{name:12s} answer loss {test['own_audio_loss']:.3f} own audio vs {test['other_audio_loss']:.3f} "
                f"another's: listens on {100 * test['listen_rate']:.1f} % of {len(keys)} clips")
        if first is None:
            first = (name, own)
        else:
            # the mean gap is paired_ctc's corpus gap with every clip weighing one
            gap = {k: v for k, v in paired_gap(first[1], own, np.ones(len(own))).items() if k in ("gap", "low", "high")}
            entry["vs_" + first[0]] = gap
            line += f"  answer loss {gap['gap']:+.3f} vs {first[0]} (95 % {gap['low']:+.3f} .. {gap['high']:+.3f})"
        print(line, flush=True)
        results["students"][name] = entry
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
