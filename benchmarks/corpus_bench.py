"""Corpus build throughput: what each engine, the augmentation and the FLAC write cost, side by side.

One process, one thread, the same sentences for every engine, interleaved rounds (this machine is
noisy: the ratios are what to read). Prints and writes ``benchmarks/results/corpus_build.md``:
utterances and audio hours per core-minute for each engine's render, for augmentation and FLAC
encoding, and for the corpus's voice mix (``corpus.voices`` shares of configs/speech.yaml), i.e. the
rate a build reaches per core; the real build's own figure is in its ``summary.json``.

    python -m benchmarks.corpus_bench --sentences 40 --rounds 2
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--config", type=Path, default=Path("configs/speech.yaml"))
    args = parser.parse_args(argv)

    import torch

    from pipeline.config import load_config
    from pipeline.data.augment import AugmentationOdds, apply_augmentation, draw_augmentation
    from pipeline.data.engines import SynthesisRequest, get_engine
    from pipeline.data.sentences import load_sentences

    torch.set_num_threads(1)
    cfg = load_config(args.config).corpus
    rng = random.Random(0)
    texts = rng.sample([s.text for s in load_sentences(min_words=cfg.min_words, max_words=cfg.max_words)],
                       args.sentences)
    voices = sorted(set(cfg.voices) | set(cfg.heldout_voices))
    for voice in voices:  # load every engine before timing
        get_engine(voice.split(":", 1)[0])
    seconds = {v: [] for v in voices}
    audio_s: dict[str, float] = {}
    clips: list[np.ndarray] = []
    for round_index in range(args.rounds):
        for voice in voices if round_index % 2 == 0 else voices[::-1]:
            engine_name, engine_voice = voice.split(":", 1)
            engine = get_engine(engine_name)
            start = time.perf_counter()
            out = engine.synthesize_many([SynthesisRequest(t, engine_voice) for t in texts])
            seconds[voice].append(time.perf_counter() - start)
            audio_s[voice] = sum(len(a) for a in out) / 16000
            if round_index == 0:
                clips += out
    odds = AugmentationOdds(clean=cfg.augment_clean, noise=cfg.augment_noise, reverb=cfg.augment_reverb,
                            telephone=cfg.augment_telephone)
    augs = [draw_augmentation(random.Random(i), odds) for i in range(len(clips))]
    start = time.perf_counter()
    augmented = [apply_augmentation(c, a) for c, a in zip(clips, augs)]
    augment_s = time.perf_counter() - start
    start = time.perf_counter()
    for clip in augmented:
        sf.write(io.BytesIO(), np.clip(np.round(clip * 32768), -32768, 32767).astype(np.int16), 16000,
                 format="FLAC", subtype="PCM_16")
    flac_s = time.perf_counter() - start
    total_audio = sum(len(c) for c in clips) / 16000

    def rates(wall: float, utterances: int, audio: float) -> tuple[float, float]:
        return utterances / (wall / 60), audio / 3600 / (wall / 60)

    rows = []
    for voice in voices:
        wall = statistics.median(seconds[voice])
        u, h = rates(wall, len(texts), audio_s[voice])
        rows.append((voice, wall / len(texts), wall / audio_s[voice], u, h, cfg.voices.get(voice, 0.0)))
    shares = {v: s for v, s in cfg.voices.items() if v in seconds}
    mix_per_utt = sum(s * statistics.median(seconds[v]) / len(texts) for v, s in shares.items()) / sum(shares.values())
    mix_audio = sum(s * audio_s[v] / len(texts) for v, s in shares.items()) / sum(shares.values())
    extra = (augment_s + flac_s) / len(clips)
    mix_total = mix_per_utt + extra
    pico = next(r for r in rows if r[0] == "pico:en-US")
    lines = ["# Corpus build throughput (one core)", "",
             f"`python -m benchmarks.corpus_bench --sentences {args.sentences} --rounds {args.rounds}`: the same "
             f"{len(texts)} WordNet/fortunes sentences for every voice, median of {args.rounds} interleaved rounds, "
             "one process, one thread.", "",
             "| voice | s per utterance | real-time factor | utterances / core-min | audio h / core-min | cost vs pico:en-US | "
             "training share |", "|---|---|---|---|---|---|---|"]
    for voice, per_utt, rtf, u, h, share in rows:
        lines.append(f"| {voice} | {per_utt:.3f} | {rtf:.4f} | {u:.0f} | {h:.3f} | {per_utt / pico[1]:.1f}x | "
                     f"{100 * share:.0f} % |")
    lines += ["", f"Augmentation {augment_s / len(clips) * 1000:.1f} ms and FLAC encoding {flac_s / len(clips) * 1000:.1f} "
              f"ms per utterance (over all {len(clips)} clips, {total_audio:.0f} s).", "",
              f"The training voice mix (shares above) costs {mix_total:.3f} s per utterance and core with augmentation "
              f"and FLAC: {60 / mix_total:.0f} utterances and {mix_audio / mix_total * 60 / 3600:.3f} audio hours per "
              f"core-minute; 20,000 utterances take {20000 * mix_total / 60 / 2:.1f} min on 2 cores at this rate."]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "corpus_build.md").write_text(text + "\n")
    (RESULTS / "corpus_build.json").write_text(json.dumps({
        "sentences": len(texts), "rounds": args.rounds,
        "voices": {v: {"seconds": seconds[v], "audio_seconds": audio_s[v]} for v in voices},
        "augment_seconds": augment_s, "flac_seconds": flac_s, "mix_seconds_per_utterance": mix_total}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
