"""What of a new voice costs the student its words: its accent, or the voice itself? (issue 13)

The released student reads the held-out voice (``pico:en-GB``) at ~81 % CTC WER and the training voices' dev rows at
~49 %, while Whisper, its teacher, hears both alike. This benchmark speaks the same dev texts (never trained on),
clean and at the voice's own speed, in pairs of renderings that differ in one thing, and reads each with the student's
CTC head and with Whisper:

- the accent alone: a training voice (Piper ``joe``) and an unseen one (Kokoro ``jm_kumo``, ``jf_alpha``) speaking
  American and then British phonemes (``PiperEngine(accent=...)``, ``KokoroEngine(accent=...)``);
- the voice alone: Pico's two voices (``en-US``, trained on; ``en-GB``, the held-out voice) on the same texts.

Each pair's gap is paired over the texts (95 % bootstrap interval, :func:`benchmarks.paired_ctc.paired_gap`). Only
dev texts are spoken; the held-out voice is measured, never trained or tuned on::

    python -m benchmarks.voice_gap --config configs/student.yaml --texts 100 --out benchmarks/results/voice_gap/voice_gap.json
"""

from __future__ import annotations

from benchmarks import save_results

import argparse
import random

import numpy as np

# (name, engine, voice, accent): pairs that differ in the accent alone or in the voice alone
RENDERINGS = (
    ("joe_us", "piper", "joe", "en-us"), ("joe_gb", "piper", "joe", "en-gb-x-rp"),
    ("kumo_us", "kokoro", "jm_kumo", "en-us"), ("kumo_gb", "kokoro", "jm_kumo", "en-gb"),
    ("alpha_us", "kokoro", "jf_alpha", "en-us"), ("alpha_gb", "kokoro", "jf_alpha", "en-gb"),
    ("pico_us", "pico", "en-US", None), ("pico_gb", "pico", "en-GB", None),
)
PAIRS = (("joe_us", "joe_gb", "accent, training voice"), ("kumo_us", "kumo_gb", "accent, unseen voice"),
         ("alpha_us", "alpha_gb", "accent, unseen voice"), ("pico_us", "pico_gb", "voice, same engine and text"))


def engine_for(engine: str, accent: str | None):
    """The TTS engine speaking ``accent``'s phonemes (None: the engine as the corpus uses it)."""
    from pipeline.data.engines import KokoroEngine, PiperEngine, get_engine

    if accent is None or (engine, accent) in {("piper", "en-us"), ("kokoro", "en-us")}:
        return get_engine(engine)
    return {"piper": PiperEngine, "kokoro": KokoroEngine}[engine](accent=accent)


def dev_texts(manifest: str, count: int, seed: int = 0) -> list[str]:
    """``count`` distinct dev transcription texts of the corpus ``manifest``, drawn with ``seed``."""
    import json

    with open(manifest) as f:
        rows = [json.loads(line) for line in f]
    texts = sorted({r["text"] for r in rows if r["split"] == "dev" and r["task"] == "transcribe"})
    random.Random(seed).shuffle(texts)
    return texts[:count]


def read_aloud(model, cfg, texts: list[str], audio: list[np.ndarray]) -> tuple[list[str], float, float]:
    """What the student's CTC head hears in ``audio`` (the spoken ``texts``), its WER and Whisper's on the same clips."""
    from pipeline.eval.metrics import word_error_rate
    from pipeline.models.teacher import whisper_transcripts

    heard = [model.ctc_transcribe([a])[0].text for a in audio]
    teacher = whisper_transcripts(audio, cfg.models.teacher, cfg.models.cache_dir)
    return heard, word_error_rate(texts, heard).wer, word_error_rate(texts, teacher).wer


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from benchmarks.paired_ctc import paired_gap
    from pipeline.config import load_config
    from pipeline.eval.metrics import word_error_rate
    from pipeline.infer import EncoderFreeModel

    p = argparse.ArgumentParser(prog="python -m benchmarks.voice_gap", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--export", default=None, help="the student (default: the workdir's trained one, else the release)")
    p.add_argument("--texts", type=int, default=100, help="dev texts, each spoken by every rendering")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)

    cfg = load_config(args.config)
    texts = dev_texts(str(Path(cfg.paths.corpus) / "manifest.jsonl"), args.texts)
    model = EncoderFreeModel.from_config(cfg, export_path=args.export)
    words = np.array([word_error_rate([t], [""]).reference_words for t in texts])
    # what a read-out that does not listen scores on these texts
    results: dict = {"texts": len(texts), "reference_words": int(words.sum()),
                     "baseline_the_of_the": word_error_rate(texts, ["the of the"] * len(texts)).wer,
                     "renderings": {}, "pairs": {}}
    print(f"without listening (\"the of the\" for every text): WER {100 * results['baseline_the_of_the']:.1f} %")
    errors = {}
    for name, engine, voice, accent in RENDERINGS:
        tts = engine_for(engine, accent)
        audio = [tts.synthesize(t, voice) for t in tqdm(texts, desc=f"speak {name}", unit="utt")]
        heard, student_wer, whisper_wer = read_aloud(model, cfg, texts, audio)
        errors[name] = np.array([word_error_rate([t], [h]).errors for t, h in zip(texts, heard)])
        results["renderings"][name] = {"engine": engine, "voice": voice, "accent": accent or voice,
                                       "student_ctc_wer": student_wer, "whisper_wer": whisper_wer}
        r = results["renderings"][name]
        print(f"{name:9s} {engine + ':' + voice:15s} {r['accent']:11s} student CTC WER {100 * r['student_ctc_wer']:5.1f} %   "
              f"Whisper {100 * r['whisper_wer']:5.1f} %")
    for a, b, what in PAIRS:
        gap = paired_gap(errors[a], errors[b], words)
        whisper = results["renderings"][b]["whisper_wer"] - results["renderings"][a]["whisper_wer"]
        results["pairs"][f"{b}-{a}"] = {"differ_in": what, "student": gap, "whisper_gap": whisper}
        print(f"{b} - {a} ({what}): student {100 * gap['gap']:+.1f} points (95 % {100 * gap['low']:+.1f} .. "
              f"{100 * gap['high']:+.1f}), Whisper {100 * whisper:+.1f}")
    save_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
