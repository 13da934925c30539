"""Training-step benchmark: cached teacher targets vs the teacher run live, truncated vs full forward.

Each variant runs in its own process (so peak RSS is its own), on the same real utterances, with the
bundled models (Whisper tiny.en teacher, SmolLM2-135M student), interleaved repeats; ratios are
printed from one run. Loader wait as a share of step time comes from the ``metrics.csv`` of a real
training run when one is given (``--metrics``).

    python -m benchmarks.train_bench [--steps 6] [--metrics runs/demo/checkpoints/distill/metrics.csv]

Writes ``benchmarks/results/train.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TEACHER = "bundled:whisper-tiny.en"
LLM = "bundled:smollm2-135m-instruct"
LAYERS = [1, 2, 3, 4]


def _utterances(n: int):
    from pipeline.data.tts import synthesize

    texts = ["the quick brown fox jumps over the lazy dog", "please call stella and ask her to bring these things",
             "what is two plus three", "a cup of coffee with milk and sugar please"]
    return [synthesize(texts[i % len(texts)], voice="en-us", rate=150 + 10 * i) for i in range(n)]


def _variant(name: str, steps: int, batch: int) -> dict:
    """One measurement (runs in a child process)."""
    import torch

    from pipeline.config import StudentConfig
    from pipeline.models.sources import load_llm
    from pipeline.models.distillation import distillation_loss
    from pipeline.models.student import AuraStudent
    from pipeline.models.teacher import WhisperTeacher

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cache = Path(os.environ.get("AURA_CACHE_DIR", Path.home() / ".cache" / "aura"))
    audio = _utterances(batch)
    targets_file = RESULTS / ".train_bench_targets.safetensors"
    if name == "prepare":
        from safetensors.torch import save_file

        teacher = WhisperTeacher.from_spec(TEACHER, cache, layers=LAYERS)
        save_file({str(i): torch.from_numpy(t).contiguous() for i, t in enumerate(teacher.encode(audio))}, str(targets_file),
                  metadata={"n_mels": str(teacher.mel.n_mels), "width": str(teacher.width)})
        return {"variant": name}
    if name == "live":
        teacher = WhisperTeacher.from_spec(TEACHER, cache, layers=LAYERS)
        n_mels, width = teacher.mel.n_mels, teacher.width
    else:  # cached-target training never holds the teacher: targets come from disk, as from the store
        from safetensors import safe_open

        with safe_open(str(targets_file), framework="pt") as f:
            meta = f.metadata()
            cached = [f.get_tensor(str(i)) for i in range(batch)]
        n_mels, width = int(meta["n_mels"]), int(meta["width"])
    llm, _ = load_llm(LLM, cache)
    student = AuraStudent.from_llm(llm, StudentConfig(distill_depth=8), teacher_layers=LAYERS,
                                   teacher_width=width, n_mels=n_mels, pooling=1)
    opt = torch.optim.AdamW(student.trainable_parameters(), lr=1e-4)
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        if name == "live":
            states = [torch.from_numpy(t) for t in teacher.encode(audio)]
        else:
            states = cached
        frames = max(s.shape[1] for s in states)
        targets = {layer: torch.stack([torch.nn.functional.pad(s[i], (0, 0, 0, frames - s.shape[1])) for s in states])
                   for i, layer in enumerate(LAYERS)}
        mel, lengths = student.patch_embedding.mel_batch(audio)
        if name == "full-forward":
            from pipeline.models.sequence import layout_speech_batch

            layout = layout_speech_batch([[1]] * len(audio), lengths, pad_id=0)
            out = student(mel=mel, token_lengths=lengths, **layout)
        else:
            out = student.forward_distill(mel, lengths)
        loss, _ = distillation_loss(out["layer_states"], targets, out["token_mask"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    return {"variant": name, "step_s": statistics.median(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(name: str, steps: int, batch: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.train_bench", "--child", name, "--steps", str(steps),
                          "--batch", str(batch)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loader_share(metrics: Path) -> float | None:
    if not metrics.exists():
        return None
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))[1:]  # the first step includes start-up
    wait = sum(float(r["loader_wait_s"]) for r in rows)
    step = sum(float(r["step_time_s"]) for r in rows)
    return wait / step if step else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--metrics", type=Path, default=Path("runs/demo/checkpoints/distill/metrics.csv"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_variant(args.child, args.steps, args.batch)))
        return
    RESULTS.mkdir(exist_ok=True)
    _run_child("prepare", args.steps, args.batch)
    runs: dict[str, list[dict]] = {"cached": [], "live": [], "full-forward": []}
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits every variant alike
        for name in runs:
            runs[name].append(_run_child(name, args.steps, args.batch))
    med = {n: {"step_s": statistics.median(r["step_s"] for r in rs),
               "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)} for n, rs in runs.items()}
    share = _loader_share(args.metrics)
    lines = [
        "# Training step: cached targets vs live teacher (CPU, this machine)",
        "",
        f"Bundled Whisper tiny.en teacher (layers {LAYERS}) and SmolLM2-135M student (LoRA r16 on layers 1-8),",
        f"batch {args.batch} real utterances, median of {args.steps} steps x {args.repeats} interleaved runs, 1 thread.",
        "",
        "| variant | step (s) | peak RSS (MB) |",
        "|---|---|---|",
        *[f"| {n} | {m['step_s']:.3f} | {m['peak_rss_mb']:.0f} |" for n, m in med.items()],
        "",
        f"- cached / live step time: **{med['cached']['step_s'] / med['live']['step_s']:.2f}x** (target <= 0.6x)",
        f"- cached / live peak RSS: **{med['cached']['peak_rss_mb'] / med['live']['peak_rss_mb']:.2f}x**",
        f"- truncated (stage 1) / full forward step: **{med['cached']['step_s'] / med['full-forward']['step_s']:.2f}x**",
        "- loader wait share of step time (real run, "
        + (f"{args.metrics}): **{share:.1%}** (target < 5%)" if share is not None else "no metrics.csv given): n/a"),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (RESULTS / ".train_bench_targets.safetensors").unlink(missing_ok=True)
    (RESULTS / "train.md").write_text(text)


if __name__ == "__main__":
    main()
