"""Inference benchmark: encoder-free AuRA vs the LLM alone, the bridge and the cascade, in one run.

Measured side by side in one process (this machine is noisy: read the ratios; absolute times only
on a GPU), on one ~3 s spoken utterance (eSpeak NG, or a speech-like signal when espeak is missing),
with greedy decoding of exactly ``--new-tokens`` tokens (stop tokens disabled, so every system
decodes the same number of tokens) and the median of ``--reps`` interleaved repetitions after a
warm-up:

1. **AuRA vs the LLM alone on the same number of tokens** (target <= 1.05x): AuRA's request (log-mel
   -> patch embedding -> ``[prompt][audio tokens][instruction]`` -> the LLM with LoRA merged) against
   the same LLM fed a text prefix of exactly the same length. Latency (request to last token) and
   time to first token.
2. **Peak memory vs the LLM alone** (target <= +2 %): the LLM is loaded once; the peak during the
   LLM-alone workload and the peak during AuRA's workload are both taken over the memory the process
   held before the LLM was loaded (CUDA: ``max_memory_allocated``; CPU: RSS high-water mark). The
   parameter bytes AuRA adds (the patch embedding) are reported too.
3. **vs bridge and cascade per utterance**: the bridge runs Whisper's encoder (30 s window, as
   Whisper requires) -> projector (4 frames per token) -> the same LLM; the cascade runs Whisper's
   full greedy transcription, then the same LLM on the transcript. Each system's peak memory is
   measured from its own load.
4. **Audio token rate** (pooling 1 / 2 / 4: 50 / 25 / 12.5 tokens per second): latency and time
   to first token of AuRA per utterance. Quality needs a model trained at each pooling: that is
   :mod:`jobs.token_rate`, whose ``token_rate.json`` (``--quality-from``, default
   ``benchmarks/results/token_rate_cpu/token_rate.json`` when present) fills the quality column.

Latency does not need trained weights: an untrained student has exactly the cost of a trained
one (LoRA merged into the weights; the projector and patch embedding have fixed sizes).

Usage (the README's benchmark command)::

    python -m benchmarks.inference_bench                      # bundled Whisper tiny.en + SmolLM2-135M
    python -m benchmarks.inference_bench --device cuda --reps 10
    python -m benchmarks.inference_bench --quality-from runs/demo/reports/token_rate.json

Writes ``benchmarks/results/inference.md`` (and ``inference.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pipeline.data.mel import frame_rate_hz
from pipeline.eval.run import free_memory

RESULTS = Path(__file__).resolve().parent / "results"
UTTERANCE_TEXT = "Please call Stella and ask her to bring six spoons of fresh snow peas from the store."


@dataclass
class Timing:
    latency_s: float
    ttft_s: float
    prompt_tokens: int
    audio_tokens: int
    new_tokens: int


def _median(values):
    return statistics.median(values) if values else float("nan")




def utterance(seconds: float = 3.0) -> tuple[np.ndarray, str]:
    """A ~3 s spoken sentence (eSpeak NG), trimmed or padded to ``seconds``; a speech-like signal without espeak."""
    try:
        from pipeline.data.tts import synthesize

        audio = synthesize(UTTERANCE_TEXT, voice="en-us", rate=190)
        source = "espeak-ng"
    except Exception as exc:  # noqa: BLE001 - the benchmark still runs without espeak
        print(f"note: espeak unavailable ({exc}); using a speech-like signal", file=sys.stderr)
        rng = np.random.default_rng(0)
        t = np.arange(int(seconds * 16000)) / 16000
        audio = (0.2 * sum(np.sin(2 * np.pi * 130 * h * t) / h for h in range(1, 8))
                 * 0.5 * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        source = "synthetic"
    n = int(seconds * 16000)
    audio = audio[:n] if len(audio) >= n else np.pad(audio, (0, n - len(audio)))
    return audio.astype(np.float32), source


# ------------------------------------------------------------------------------------------------
# Workloads (each decodes exactly `new_tokens` tokens)


def run_aura(model, audio, instruction, new_tokens) -> Timing:
    from pipeline.decoding import greedy_decode

    start = time.perf_counter()
    prefix = model.build_prefix([audio], [instruction])
    out = greedy_decode(model.llm, prefix["inputs_embeds"], prefix["attention_mask"], prefix["audio_mask"],
                        max_new_tokens=new_tokens, stop_token_ids=[], pad_token_id=model.pad_token_id,
                        bidirectional_audio=model.bidirectional_audio, start_time=start)
    return Timing(out.finished_s[0], out.first_token_s[0], int(prefix["attention_mask"].sum()),
                  int(prefix["token_lengths"][0]), len(out.token_ids[0]))


def run_llm_alone(llm, ids: torch.Tensor, new_tokens: int, pad_id: int) -> Timing:
    from pipeline.decoding import greedy_decode

    start = time.perf_counter()
    device = llm.get_input_embeddings().weight.device
    ids = ids.to(device)
    embeds = llm.get_input_embeddings()(ids)
    out = greedy_decode(llm, embeds, torch.ones_like(ids), None, max_new_tokens=new_tokens, stop_token_ids=[],
                        pad_token_id=pad_id, start_time=start)
    return Timing(out.finished_s[0], out.first_token_s[0], int(ids.shape[1]), 0, len(out.token_ids[0]))


def run_bridge(bridge, audio, instruction, new_tokens) -> Timing:
    r = bridge.answer(audio, instruction, max_new_tokens=new_tokens)
    return Timing(r.latency_s, r.time_to_first_token_s, r.prompt_tokens, r.num_audio_tokens, r.new_tokens)


def run_cascade(cascade, audio, instruction, new_tokens) -> tuple[Timing, str]:
    from pipeline.prompts import text_prompt
    from pipeline.decoding import greedy_decode

    start = time.perf_counter()
    transcript, _, _ = cascade.transcribe(audio, max_new_tokens=64, start=start)
    tok, llm = cascade.tokenizer, cascade.llm
    text = tok.apply_chat_template([{"role": "user", "content": text_prompt(transcript, instruction)}], tokenize=False,
                                   add_generation_prompt=True)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]], device=llm.device)
    out = greedy_decode(llm, llm.get_input_embeddings()(ids), torch.ones_like(ids), None, max_new_tokens=new_tokens,
                        stop_token_ids=[], pad_token_id=0, start_time=start)
    return Timing(out.finished_s[0], out.first_token_s[0], int(ids.shape[1]), 0, len(out.token_ids[0])), transcript


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def interleaved(workloads: dict, reps: int) -> dict[str, list[Timing]]:
    """Warm every workload up once, then run them in turn ``reps`` times (noise hits all alike)."""
    for fn in workloads.values():
        fn()
    timings: dict[str, list[Timing]] = {k: [] for k in workloads}
    for rep in range(reps):
        for name, fn in workloads.items():
            timings[name].append(fn())
        _log(f"{', '.join(workloads)}: repetition {rep + 1}/{reps} done")
    return timings


def summary(ts: list[Timing]) -> dict:
    return {"latency_s": _median([t.latency_s for t in ts]), "ttft_s": _median([t.ttft_s for t in ts]),
            "latency_min_s": min(t.latency_s for t in ts), "ttft_min_s": min(t.ttft_s for t in ts),
            "prompt_tokens": ts[0].prompt_tokens, "audio_tokens": ts[0].audio_tokens, "new_tokens": ts[0].new_tokens,
            "decode_s_per_token": _median([(t.latency_s - t.ttft_s) / max(1, t.new_tokens - 1) for t in ts])}


# ------------------------------------------------------------------------------------------------
# The benchmark


def benchmark(teacher: str, llm_spec: str, device: str, dtype: str, reps: int, new_tokens: int, seconds: float,
              poolings: list[int], quality_from: Path | None = None) -> dict:
    from pipeline.config import default_cache_dir
    from pipeline.data.mel import MelSettings
    from pipeline.eval.systems import BridgeSystem, CascadeSystem
    from pipeline.models.bridge import BridgeProjector
    from pipeline.runtime import load_frozen_llm
    from pipeline.eval.metrics import PeakMemory
    from pipeline.infer import EncoderFreeModel
    from pipeline.runtime import resolve_device, resolve_dtype
    from pipeline.models.sources import load_whisper
    from pipeline.models.patch_embedding import AudioPatchEmbedding
    from pipeline.models.teacher import WhisperTeacher
    from pipeline.prompts import instruction_for

    device_t = resolve_device(device)
    dtype_t = resolve_dtype(dtype, device_t)
    cache = default_cache_dir()
    cfg_like = _Cfg(teacher, llm_spec, cache)
    audio, audio_source = utterance(seconds)
    instruction = instruction_for("spoken_qa")
    result: dict = {"device": str(device_t), "dtype": str(dtype_t).removeprefix("torch."), "teacher": teacher,
                    "llm": llm_spec, "reps": reps, "new_tokens": new_tokens, "utterance_s": seconds,
                    "audio_source": audio_source, "gpu": torch.cuda.get_device_name(device_t) if device_t.type == "cuda" else None,
                    "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    # Whisper's mel settings (the student's patch embedding uses the teacher's front end)
    whisper, fe, _ = load_whisper(teacher, cache)
    mel = MelSettings(n_mels=fe.feature_size, n_fft=fe.n_fft, hop_length=fe.hop_length, sampling_rate=fe.sampling_rate)
    teacher_layers, teacher_width = whisper.config.encoder_layers, whisper.config.d_model
    del whisper
    free_memory()

    # 1 + 2 + 4: the LLM once; LLM alone vs AuRA at each pooling, memory over the pre-load baseline
    meter = PeakMemory(str(device_t))
    meter.baseline()
    llm, tokenizer = load_frozen_llm(cfg_like, device_t, dtype_t)
    width = llm.config.hidden_size
    models = {}
    for p in poolings:
        torch.manual_seed(0)
        patch = AudioPatchEmbedding(mel.n_mels, width, 2 * p, mel_settings=mel).to(device_t, dtype_t)
        models[p] = EncoderFreeModel(llm, tokenizer, patch)
    base_model = models[poolings[0]]
    prefix_len = int(base_model.build_prefix([audio], [instruction])["attention_mask"].sum())
    vocab_lo = max(len(tokenizer.all_special_ids) + 10, 300)
    ids = torch.randint(vocab_lo, llm.config.vocab_size - 1, (1, prefix_len), generator=torch.Generator().manual_seed(0))
    pad = base_model.pad_token_id
    patch_params = sum(p.numel() for p in base_model.patch_embedding.parameters())
    llm_params = sum(p.numel() for p in llm.parameters())

    meter.start()
    llm_alone_mem = interleaved({"llm": lambda: run_llm_alone(llm, ids, new_tokens, pad)}, 1)
    mem_llm = meter.stop()
    meter.start()
    interleaved({"aura": lambda: run_aura(base_model, audio, instruction, new_tokens)}, 1)
    mem_aura = meter.stop()
    del llm_alone_mem

    workloads = {"llm_alone": lambda: run_llm_alone(llm, ids, new_tokens, pad)}
    for p, m in models.items():
        workloads[f"aura_p{p}"] = (lambda m=m: run_aura(m, audio, instruction, new_tokens))
    timings = interleaved(workloads, reps)
    result["llm_alone"] = summary(timings["llm_alone"])
    result["aura"] = {p: summary(timings[f"aura_p{p}"]) for p in poolings}
    result["memory"] = {"llm_alone": mem_llm.to_dict(), "aura": mem_aura.to_dict(),
                        "llm_params": llm_params, "patch_embedding_params": patch_params,
                        "param_bytes_ratio": (llm_params + patch_params) / llm_params}
    workloads.clear()
    models = base_model = llm = tokenizer = None  # free before the next systems load
    free_memory()

    # 3: bridge and cascade, each from its own load (same utterance, same number of new tokens)
    for name in ("bridge", "cascade"):
        meter = PeakMemory(str(device_t))
        meter.baseline()
        if name == "bridge":
            t = WhisperTeacher.from_spec(teacher, cache, layers=[teacher_layers], device=device_t, dtype=dtype_t)
            llm, tokenizer = load_frozen_llm(cfg_like, device_t, dtype_t)
            torch.manual_seed(0)
            projector = BridgeProjector(teacher_width, llm.config.hidden_size, stack=4).to(device_t, dtype_t)
            system = BridgeSystem(t, projector, llm, tokenizer, {"teacher_layer": teacher_layers, "pooling": 1})
            system.stop_ids = []  # exactly new_tokens tokens, like the others
            fn = lambda: run_bridge(system, audio, instruction, new_tokens)  # noqa: E731
        else:
            system = CascadeSystem.from_config(cfg_like, device=device_t, dtype=dtype_t)
            fn = lambda: run_cascade(system, audio, instruction, new_tokens)[0]  # noqa: E731
            result["cascade_transcript"] = run_cascade(system, audio, instruction, 1)[1]
        meter.start()
        ts = interleaved({name: fn}, reps)[name]
        result[name] = summary(ts)
        result["memory"][name] = meter.stop().to_dict()
        system = fn = None
        free_memory()

    result["quality"] = token_rate_quality(quality_from, poolings)
    return result


class _Cfg:
    """The slice of an AuraConfig the system loaders read (models + trust_remote_code)."""

    def __init__(self, teacher: str, llm: str, cache_dir: Path):
        from pipeline.config import ModelsConfig

        self.models = ModelsConfig(teacher=teacher, llm=llm, cache_dir=cache_dir)


def token_rate_quality(path: Path | None, poolings: list[int]) -> dict[int, dict | None]:
    """Held-out quality per pooling from a :mod:`jobs.token_rate` table (``None`` where it has no trained point)."""
    rows = {}
    if path is not None and Path(path).is_file():
        rows = {int(r["pooling"]): r for r in json.loads(Path(path).read_text()) if r.get("wer") is not None}
    return {p: None if p not in rows else {"source": str(path), "utterances": rows[p]["utterances"],
                                            "wer": rows[p]["wer"], "qa_accuracy": rows[p]["qa_accuracy"]}
            for p in poolings}


# ------------------------------------------------------------------------------------------------
# Report


def _r(a: float, b: float) -> str:
    return f"{a / b:.3f}x" if b else "–"


def render(result: dict) -> str:
    llm, poolings = result["llm_alone"], sorted(result["aura"], key=int)
    aura = result["aura"][poolings[0]]
    mem = result["memory"]

    def mb(r):
        return r["peak_mb"]

    mem_ratio = mb(mem["aura"]) / mb(mem["llm_alone"]) if mb(mem["llm_alone"]) else float("nan")
    lat_ratio = aura["latency_s"] / llm["latency_s"]
    lines = [
        "# Inference benchmark",
        "",
        f"`python -m benchmarks.inference_bench` — {result['created']}; device **{result['device']}**"
        + (f" ({result['gpu']})" if result.get("gpu") else f" ({result['cpu']}, {result['threads']} threads)")
        + f", {result['dtype']}, torch {result['torch']}. Teacher `{result['teacher']}`, LLM `{result['llm']}`. "
        f"One {result['utterance_s']:.1f} s utterance ({result['audio_source']}), exactly {result['new_tokens']} new "
        f"tokens per request (greedy, stop tokens off), median of {result['reps']} interleaved repetitions after a "
        "warm-up. Untrained weights: the cost of a trained model is the same.",
        "",
        "## AuRA vs the LLM alone (same number of tokens)",
        "",
        "| | prefix tokens | audio tokens | latency (s) | TTFT (s) | per new token (ms) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|",
        f"| LLM alone (text prefix) | {llm['prompt_tokens']} | 0 | {llm['latency_s']:.4f} | {llm['ttft_s']:.4f} "
        f"| {1000 * llm['decode_s_per_token']:.2f} | {mb(mem['llm_alone']):.1f} |",
        f"| AuRA, pooling {poolings[0]} | {aura['prompt_tokens']} | {aura['audio_tokens']} | {aura['latency_s']:.4f} "
        f"| {aura['ttft_s']:.4f} | {1000 * aura['decode_s_per_token']:.2f} | {mb(mem['aura']):.1f} |",
        f"| **ratio AuRA / LLM** | | | **{lat_ratio:.3f}x** (target <= 1.05x: "
        f"{'met' if lat_ratio <= 1.05 else 'NOT met'}) | {_r(aura['ttft_s'], llm['ttft_s'])} "
        f"| {_r(aura['decode_s_per_token'], llm['decode_s_per_token'])} | **{mem_ratio:.3f}x** (target <= 1.02x: "
        f"{'met' if mem_ratio <= 1.02 else 'NOT met'}) |",
        f"| ratio, best of {result['reps']} | | | {_r(aura['latency_min_s'], llm['latency_min_s'])} "
        f"| {_r(aura['ttft_min_s'], llm['ttft_min_s'])} | | |",
        "",
        f"Parameters: the patch embedding adds {mem['patch_embedding_params']:,} to the LLM's {mem['llm_params']:,} "
        f"({100 * (mem['param_bytes_ratio'] - 1):.2f} %). Peak memory = peak during the workload over what the "
        f"process held before the LLM was loaded ({mem['aura']['method']}).",
        "",
        "## Per utterance: AuRA vs bridge vs cascade",
        "",
        "| system | audio tokens | prefix tokens | latency (s) | TTFT (s) | latency vs AuRA | best-of-N latency vs AuRA "
        "| peak memory (MB) | memory vs AuRA |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("AuRA (encoder-free)", aura, mem["aura"]), ("Bridge (Whisper encoder + projector)", result["bridge"], mem["bridge"]),
            ("Cascade (Whisper transcribe -> LLM)", result["cascade"], mem["cascade"]), ("LLM alone", llm, mem["llm_alone"])]
    for name, s, m in rows:
        lines.append(f"| {name} | {s['audio_tokens']} | {s['prompt_tokens']} | {s['latency_s']:.4f} | {s['ttft_s']:.4f} "
                     f"| {_r(s['latency_s'], aura['latency_s'])} | {_r(s['latency_min_s'], aura['latency_min_s'])} "
                     f"| {mb(m):.1f} | {_r(mb(m), mb(mem['aura']))} |")
    lines += ["",
              f"The cascade's Whisper transcript of the utterance: \"{result.get('cascade_transcript', '')}\". The "
              "bridge runs Whisper's encoder on its full 30 s window (Whisper refuses shorter inputs); the cascade "
              "additionally decodes the transcript token by token before the LLM can start.",
              "",
              "## Audio token rate (pooling)",
              "",
              "| pooling | audio tokens / s | audio tokens (utterance) | latency (s) | TTFT (s) | latency vs pooling 1 | quality |",
              "|---|---|---|---|---|---|---|"]
    first = result["aura"][poolings[0]]
    for p in poolings:
        s = result["aura"][p]
        q = result["quality"].get(p)
        if q is None:
            quality = "not measured: no model trained at this pooling (run jobs.token_rate)"
        else:
            wer = "–" if q["wer"] is None else f"{100 * q['wer']:.1f}%"
            acc = "–" if q["qa_accuracy"] is None else f"{100 * q['qa_accuracy']:.1f}%"
            quality = f"WER {wer}, QA {acc} ({q['utterances']} held-out utterances, {Path(q['source']).name})"
        lines.append(f"| {p} | {frame_rate_hz(p):g} | {s['audio_tokens']} | {s['latency_s']:.4f} | {s['ttft_s']:.4f} "
                     f"| {_r(s['latency_s'], first['latency_s'])} | {quality} |")
    lines += ["", "Absolute times are only meaningful on a GPU; on a shared CPU compare the ratios (medians, and the "
              "best of the repetitions, which is less sensitive to other processes' load)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="bundled:whisper-tiny.en")
    parser.add_argument("--llm", default="bundled:smollm2-135m-instruct")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0, help="utterance length (default: 3 s)")
    parser.add_argument("--poolings", default="1,2,4")
    parser.add_argument("--quality-from", type=Path, default=RESULTS / "token_rate_cpu" / "token_rate.json",
                        help="token_rate.json of a jobs.token_rate run: held-out quality per pooling")
    parser.add_argument("--out", type=Path, default=RESULTS / "inference.md")
    args = parser.parse_args(argv)
    poolings = [int(p) for p in args.poolings.split(",")]
    result = benchmark(args.teacher, args.llm, args.device, args.dtype, args.reps, args.new_tokens, args.seconds,
                       poolings, args.quality_from)
    text = render(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))
    print(text)
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
