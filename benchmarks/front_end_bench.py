"""What Whisper's layers cost in the released student's front end: 0 to 3 owned layers, side by side in one run.

The release's patch embedding runs Whisper tiny.en's convolutional stem and its first encoder layers
(``student.teacher_blocks``) before its projection into the LLM. Each variant here is the released student with N
of those layers in its front end: the release's own layers for N up to its count, copies of its last one beyond
(a layer's cost does not depend on its weights); the same LLM, LoRA and CTC head. On the release's shipped example
clips (its held-out voice), one clip per request, interleaved so that the machine's noise hits every variant alike,
the median over ``--reps`` repetitions of:

1. the front end alone: 16 kHz audio -> log-mel -> audio tokens;
2. the request ``aura transcribe`` serves: the CTC read-out (front end, the LLM's first ``ctc_layer`` layers, the
   CTC head, greedy path).

The floor is the variant without Whisper's layers (N = 0); every ratio is against it and against the release.

Usage::

    python -m benchmarks.front_end_bench                 # 0,1,2,3 layers, 7 repetitions
    python -m benchmarks.front_end_bench --layers 0,2 --reps 3

Writes ``benchmarks/results/front_end.md`` (and ``front_end.json``).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pipeline.models.student import TEACHER_LAYERS_KEYS

RESULTS = Path(__file__).resolve().parent / "results"
LLM = "bundled:smollm2-135m-instruct"


def front_end_with_layers(patch, layers: int):
    """A copy of the released patch embedding ``patch`` with ``layers`` of Whisper's encoder layers: its own first
    ones, then copies of its last (``layers=0``: the stem alone, as the releases before 2026-12-07)."""
    from pipeline.models.patch_embedding import AudioPatchEmbedding

    owned = len(patch.teacher_blocks) if patch.teacher_blocks is not None else 0
    if layers and not owned:
        raise ValueError("the released front end has no teacher layers to copy")
    width = patch.teacher_stem[0].out_channels
    variant = AudioPatchEmbedding(patch.n_mels, patch.proj.out_features, patch.stride, hidden=patch.proj.in_features,
                                  mel_settings=patch.mel_settings, teacher_stem_width=width, teacher_blocks=layers)
    released = patch.state_dict()
    prefix = TEACHER_LAYERS_KEYS.removeprefix("patch_embedding.")
    state = {}
    for key in variant.state_dict():
        if key.startswith(prefix):
            index, rest = key.removeprefix(prefix).split(".", 1)
            key_from = f"{prefix}{min(int(index), owned - 1)}.{rest}"
        else:
            key_from = key
        state[key] = released[key_from]
    variant.load_state_dict(state)
    return variant.eval()


def _median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def benchmark(layer_counts: list[int], reps: int) -> dict:
    from pipeline.infer import EncoderFreeModel
    from pipeline.released import RELEASE_DIR, released_examples
    import soundfile as sf

    audios = [sf.read(row["path"], dtype="float32")[0] for row in released_examples()]
    released = EncoderFreeModel.from_export(LLM, RELEASE_DIR / "student.safetensors", device="cpu", dtype="float32")
    owned = len(released.patch_embedding.teacher_blocks or [])
    models = {}
    for n in layer_counts:
        model = copy.copy(released)  # shares the LLM, LoRA and CTC head
        model.patch_embedding = front_end_with_layers(released.patch_embedding, n)
        models[n] = model
    expected = [r.text for r in released.ctc_transcribe(audios[:1])]
    if owned in models and [r.text for r in models[owned].ctc_transcribe(audios[:1])] != expected:
        raise RuntimeError("the variant with the release's own layers does not transcribe as the release does")

    def front_end(model, audio):
        mel, lengths = model.patch_embedding.mel_batch([audio])
        model.patch_embedding(mel, int(lengths.max()))

    workloads = {"front_end": front_end, "transcribe": lambda model, audio: model.ctc_transcribe([audio])}
    timings = {(w, n): [] for w in workloads for n in models}
    with torch.inference_mode():
        for fn in workloads.values():  # warm-up
            for model in models.values():
                fn(model, audios[0])
        for _ in range(reps):
            for audio in audios:
                for w, fn in workloads.items():
                    for n, model in models.items():
                        start = time.perf_counter()
                        fn(model, audio)
                        timings[(w, n)].append(time.perf_counter() - start)
    floor = min(layer_counts)
    result = {"release_layers": owned, "llm": LLM, "clips": len(audios), "reps": reps,
              "clip_seconds": round(float(np.mean([len(a) / 16000 for a in audios])), 2),
              "audio_tokens": [int(released.patch_embedding.num_tokens(len(a))) for a in audios],
              "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "variants": {}}
    for n, model in models.items():
        blocks = model.patch_embedding.teacher_blocks
        result["variants"][n] = {
            "front_end_ms": _median_ms(timings[("front_end", n)]),
            "transcribe_ms": _median_ms(timings[("transcribe", n)]),
            "layer_weights": sum(p.numel() for p in blocks.parameters()) if blocks is not None else 0,
            "front_end_weights": sum(p.numel() for p in model.patch_embedding.parameters())}
    for n, v in result["variants"].items():
        for w in workloads:
            v[f"{w}_vs_floor"] = v[f"{w}_ms"] / result["variants"][floor][f"{w}_ms"]
            if owned in result["variants"]:
                v[f"{w}_vs_release"] = v[f"{w}_ms"] / result["variants"][owned][f"{w}_ms"]
    return result


def render(result: dict) -> str:
    owned = result["release_layers"]
    lines = [
        "# What Whisper's layers cost in the front end (`python -m benchmarks.front_end_bench`)",
        "",
        f"The released student (owning {owned} of Whisper tiny.en's encoder layers) with 0-3 of them in its front end, "
        f"side by side in one run on {result['cpu']} ({result['threads']} threads, torch {result['torch']}, fp32): "
        f"its {result['clips']} shipped example clips ({result['clip_seconds']} s on average, "
        f"{min(result['audio_tokens'])}-{max(result['audio_tokens'])} audio tokens), one clip a request, the median "
        f"of {result['reps']} interleaved repetitions. Read the ratios: this machine is noisy.",
        "",
        "| Whisper layers in the front end | front end (ms / clip) | vs none | transcribe, CTC read-out (ms / clip) | "
        "vs none | vs the release | layers' weights |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, v in sorted(result["variants"].items(), key=lambda kv: int(kv[0])):
        mark = " (the release)" if int(n) == owned else ""
        lines.append(f"| {n}{mark} | {v['front_end_ms']:.1f} | {v['front_end_vs_floor']:.2f}x | "
                     f"{v['transcribe_ms']:.1f} | {v['transcribe_vs_floor']:.2f}x | "
                     f"{v.get('transcribe_vs_release', float('nan')):.2f}x | {v['layer_weights'] / 1e6:.2f} M |")
    lines += ["", f"Measured {result['created']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default="0,1,2,3", help="the counts of Whisper layers to compare (default 0,1,2,3)")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "front_end.md")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    result = benchmark([int(n) for n in args.layers.split(",")], args.reps)
    text = render(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
