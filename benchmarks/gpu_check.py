"""GPU check at paper scale: memory and latency of AuRA vs bridge vs cascade, and training-step cost.

One prepared script for a machine with one GPU and no network. All weights are random (nothing is
downloaded); the architectures have the paper's sizes:

* teacher: a Whisper-large-v3-shaped encoder (32 layers, width 1280, 20 heads, 128 mel bins,
  1500 positions) and, for the cascade, its 32-layer decoder;
* LLM: a 7B-class Llama/Qwen2-shaped decoder (hidden 3584, 28 layers, 28 heads, 4 KV heads,
  intermediate 18944, vocab 152064), bf16.

Inference, one request of a ~3 s utterance, every system generating exactly ``--gen-tokens`` tokens
(stop tokens are ignored so that random weights cannot stop early):

``llm_alone``     the floor: the same LLM given as many text tokens as AuRA's prompt;
``encoder_free``  AuRA: log-mel -> audio patch embedding -> LLM with LoRA merged (150 audio tokens +
                  the chat prompt), through :class:`pipeline.infer.EncoderFreeModel`;
``bridge``        Whisper encoder on its 30 s window -> projector -> LLM, through
                  :class:`pipeline.eval.systems.BridgeSystem`;
``cascade``       Whisper encoder + decoder greedily writing a ~30-token transcript (KV cache), then
                  the LLM answering from that text (:func:`pipeline.decoding.greedy_decode`).

Training (stage 1), one optimizer step on a batch of ``--train-batch`` x 3 s: patch embedding ->
LLM layers up to the deepest distilled layer (LoRA on the first K layers) -> heads -> cosine loss
-> backward -> AdamW, with the targets

``cached_targets``  read from memory (as from the feature store; the teacher is never loaded);
``live_teacher``    computed by the Whisper teacher in the same step (:class:`WhisperTeacher`).

Memory: ``torch.cuda.max_memory_allocated`` after a reset, with the variant's models already built
(so the weights are counted, build-time transients are not); on CPU, the peak RSS of the process
(``VmHWM``, reset between variants where Linux allows) instead. Latency: median of ``--reps`` after
``--warmup`` runs. Results are written after every variant, so a run cut short still leaves what it
measured: ``<out>/gpu_check.json`` and ``<out>/gpu_check.md``.

    python benchmarks/gpu_check.py                      # paper scale, GPU, ~3-5 minutes on one H100
    python benchmarks/gpu_check.py --toy --out /tmp/x   # the same code at toy sizes on CPU, seconds
    benchmarks/gpu_check.sh                             # the paper-scale run with its environment
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.data.audio import speechlike  # noqa: E402
from pipeline.decoding import cache_kwarg  # noqa: E402
from pipeline.eval.metrics import PeakMemory, current_rss_bytes  # noqa: E402
from pipeline.eval.report import format_value  # noqa: E402
from pipeline.runtime import synchronize  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
INSTRUCTION = "Answer the question asked in the audio with a single word."


# ---------------------------------------------------------------------------------------------- sizes
@dataclass
class Sizes:
    """Every size the check uses; ``--toy`` and the paper scale differ only here."""

    # teacher: Whisper-large-v3 shape
    whisper_layers: int = 32
    whisper_decoder_layers: int = 32
    whisper_width: int = 1280
    whisper_heads: int = 20
    whisper_ffn: int = 5120
    n_mels: int = 128
    whisper_positions: int = 1500  # 30 s window: 3000 mel frames -> 1500 after the stride-2 conv
    whisper_vocab: int = 51866
    # student LLM: 7B-class Llama/Qwen2 shape
    llm_hidden: int = 3584
    llm_layers: int = 28
    llm_heads: int = 28
    llm_kv_heads: int = 4
    llm_intermediate: int = 18944
    llm_vocab: int = 152064
    # AuRA student
    teacher_layers: str = "4,8,12,16,20,24,28,32"  # stored Whisper layers (comma-separated)
    distill_depth: int = 14  # deepest distilled student layer (half the LLM)
    lora_layers: int = 0  # K; 0 = up to the deepest distilled layer
    lora_rank: int = 32
    bridge_stack: int = 4  # bridge projector: frames stacked per LLM token
    # workload
    utterance_s: float = 3.0  # 150 teacher frames = 150 audio tokens
    gen_tokens: int = 32
    transcript_tokens: int = 30
    train_batch: int = 8
    # repetitions
    warmup: int = 3
    reps: int = 15  # batch-1 decoding is host-bound on a GPU: its time varies run to run
    train_warmup: int = 2
    train_steps: int = 8


TOY = dict(
    whisper_layers=2, whisper_decoder_layers=2, whisper_width=64, whisper_heads=2, whisper_ffn=128, n_mels=80,
    whisper_vocab=512, llm_hidden=64, llm_layers=4, llm_heads=4, llm_kv_heads=2, llm_intermediate=128,
    llm_vocab=512, teacher_layers="1,2", distill_depth=2, lora_rank=4, utterance_s=1.0, gen_tokens=4,
    transcript_tokens=4, train_batch=2, warmup=1, reps=2, train_warmup=1, train_steps=2,
)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toy", action="store_true", help="toy sizes (defaults below are the paper's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--device", default="auto", help="auto (cuda when there is one), cuda, cpu")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on cuda, float32 on cpu), bfloat16, float32")
    parser.add_argument("--only", default="llm_alone,encoder_free,bridge,cascade,cached_targets,live_teacher",
                        help="comma-separated variants to run")
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="skip variants not started within this many seconds of the start")
    parser.add_argument("--seed", type=int, default=0)
    defaults = Sizes()
    for f in fields(Sizes):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(defaults, f.name)), default=None,
                            help=f"default {getattr(defaults, f.name)} (paper), {TOY.get(f.name, getattr(defaults, f.name))} (toy)")
    args = parser.parse_args(argv)
    values = {**asdict(defaults), **(TOY if args.toy else {})}
    values.update({f.name: getattr(args, f.name) for f in fields(Sizes) if getattr(args, f.name) is not None})
    return args, Sizes(**values)


# ---------------------------------------------------------------------------------------------- helpers
class MemoryMeter:
    """Peak memory of one variant, through the pipeline's :class:`~pipeline.eval.metrics.PeakMemory` (CUDA max
    allocated after a reset, or the process's peak RSS on CPU), plus what is held right after the build (the
    weights) and, on CUDA, the peak reserved by the caching allocator."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "cpu_peak_rss"
        self._peak = PeakMemory(device.type)

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self._peak.start()

    def peak_gb(self) -> float:
        return self._peak.stop().peak_bytes / 2**30

    def reserved_gb(self) -> float | None:
        return torch.cuda.max_memory_reserved(self.device) / 2**30 if self.device.type == "cuda" else None

    def current_gb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device) / 2**30
        return current_rss_bytes() / 2**30


@contextlib.contextmanager
def default_dtype_and_device(dtype: torch.dtype, device: torch.device):
    """Build modules directly on ``device`` in ``dtype`` (a 7B model never exists in fp32 on the host)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------------------------------- models
class Builder:
    """Random-weight models of the configured sizes, built on the target device and dtype."""

    def __init__(self, sizes: Sizes, device: torch.device, dtype: torch.dtype, seed: int):
        self.sizes, self.device, self.dtype, self.seed = sizes, device, dtype, seed
        self._tokenizer = None

    @property
    def teacher_layers(self) -> list[int]:
        return [int(x) for x in self.sizes.teacher_layers.split(",") if x.strip()]

    def tokenizer(self):
        """The random tiny Llama's ChatML tokenizer (built offline by pipeline.models.sources); its ids fit any vocab."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from pipeline.models.sources import resolve_model_dir

            self._tokenizer = AutoTokenizer.from_pretrained(resolve_model_dir("random:llama-tiny"))
            if len(self._tokenizer) > self.sizes.llm_vocab:
                raise ValueError(f"llm_vocab={self.sizes.llm_vocab} is smaller than the tokenizer ({len(self._tokenizer)})")
        return self._tokenizer

    def llm(self):
        from transformers import LlamaConfig, LlamaForCausalLM

        s = self.sizes
        tok = self.tokenizer()
        config = LlamaConfig(
            vocab_size=s.llm_vocab, hidden_size=s.llm_hidden, num_hidden_layers=s.llm_layers,
            num_attention_heads=s.llm_heads, num_key_value_heads=s.llm_kv_heads, intermediate_size=s.llm_intermediate,
            max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=False,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        config._attn_implementation = "sdpa"
        torch.manual_seed(self.seed)
        with default_dtype_and_device(self.dtype, self.device):
            model = LlamaForCausalLM(config)
        for p in model.parameters():
            p.requires_grad_(False)
        return model.eval()

    def whisper_config(self):
        from transformers import WhisperConfig

        s = self.sizes
        eot = min(50257, s.whisper_vocab - 8)
        return WhisperConfig(
            vocab_size=s.whisper_vocab, num_mel_bins=s.n_mels, d_model=s.whisper_width,
            encoder_layers=s.whisper_layers, encoder_attention_heads=s.whisper_heads, encoder_ffn_dim=s.whisper_ffn,
            decoder_layers=s.whisper_decoder_layers, decoder_attention_heads=s.whisper_heads,
            decoder_ffn_dim=s.whisper_ffn, max_source_positions=s.whisper_positions, max_target_positions=448,
            pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=eot + 1,
            suppress_tokens=[], begin_suppress_tokens=[],
        )

    def whisper_encoder(self):
        """A Whisper encoder as ``WhisperModel`` holds it (``WhisperEncoder``), without building the decoder."""
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        torch.manual_seed(self.seed + 1)
        config = self.whisper_config()
        config._attn_implementation = "sdpa"
        with default_dtype_and_device(self.dtype, self.device):
            encoder = WhisperEncoder(config)
        return encoder.eval().requires_grad_(False)

    def whisper_full(self):
        from transformers import WhisperForConditionalGeneration

        torch.manual_seed(self.seed + 1)
        config = self.whisper_config()
        config._attn_implementation = "sdpa"
        with default_dtype_and_device(self.dtype, self.device):
            model = WhisperForConditionalGeneration(config)
        return model.eval().requires_grad_(False)

    def teacher(self, encoder, layers: list[int]):
        from pipeline.data.mel import MelSettings
        from pipeline.models.teacher import WhisperTeacher

        return WhisperTeacher(encoder, MelSettings(n_mels=self.sizes.n_mels), layers=layers, pooling=1,
                              device=self.device, dtype=self.dtype)

    def student(self, llm):
        from pipeline.config import StudentConfig
        from pipeline.models.student import AuraStudent

        s = self.sizes
        cfg = StudentConfig(lora_rank=s.lora_rank, lora_alpha=2.0 * s.lora_rank, distill_depth=s.distill_depth,
                            lora_layers=s.lora_layers or None)
        torch.manual_seed(self.seed + 2)
        return AuraStudent.from_llm(llm, cfg, teacher_layers=self.teacher_layers, teacher_width=s.whisper_width,
                                    n_mels=s.n_mels, pooling=1)


# ---------------------------------------------------------------------------------------------- inference
@dataclass
class Result:
    variant: str
    label: str
    kind: str  # inference | training
    peak_mem_gb: float | None = None
    mem_kind: str = ""
    reserved_gb: float | None = None  # cuda: peak reserved by the caching allocator
    weights_gb: float | None = None  # allocated (cuda) or resident (cpu) after building, before running
    times_s: list[float] = field(default_factory=list)
    median_s: float | None = None
    ttft_s: float | None = None  # inference: median time to first generated token
    new_tokens: int | None = None
    prefix_tokens: int | None = None
    audio_tokens: int | None = None
    build_s: float | None = None
    notes: str = ""
    error: str | None = None


LABELS = {
    "llm_alone": "LLM alone, same number of prompt tokens (the floor)",
    "encoder_free": "AuRA encoder-free (patch embedding + LLM, LoRA merged)",
    "bridge": "Bridge (Whisper encoder 30 s window + projector + LLM)",
    "cascade": "Cascade (Whisper encoder + decoder transcript -> LLM)",
    "cached_targets": "Train step, cached teacher targets",
    "live_teacher": "Train step, teacher run live",
}


def timed_runs(run: Callable[[], dict], warmup: int, reps: int, device: torch.device) -> tuple[list[float], list[dict]]:
    for _ in range(warmup):
        run()
    times, infos = [], []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        info = run()
        synchronize(device)
        times.append(time.perf_counter() - t0)
        infos.append(info)
    return times, infos


def run_encoder_free(b: Builder, audio: np.ndarray, result: Result) -> Callable[[], dict]:
    from pipeline.infer import EncoderFreeModel

    student = b.student(b.llm())
    model = EncoderFreeModel.from_student(student, b.tokenizer(), merge=True)  # LoRA merged: a plain LLM
    model.stop_token_ids = []  # random weights: never stop early, always gen_tokens tokens
    del student
    result.notes = "pipeline.infer.EncoderFreeModel.generate (mel on CPU, greedy_decode with DynamicCache)"

    def run() -> dict:
        r = model.generate([audio], [INSTRUCTION], max_new_tokens=b.sizes.gen_tokens)[0]
        return {"ttft": r.time_to_first_token_s, "new_tokens": r.new_tokens, "prefix": r.prompt_tokens,
                "audio": r.num_audio_tokens}

    return run


def run_llm_alone(b: Builder, audio: np.ndarray, result: Result) -> Callable[[], dict]:
    """The floor: the same LLM given as many text tokens as AuRA's prompt (audio tokens included)."""
    from pipeline.data.mel import WHISPER_SAMPLE_RATE, frame_rate_hz
    from pipeline.decoding import greedy_decode
    from pipeline.prompts import prompt_ids

    llm, tok = b.llm(), b.tokenizer()
    before, after = prompt_ids(tok, INSTRUCTION)
    audio_tokens = int(audio.shape[0] / WHISPER_SAMPLE_RATE * frame_rate_hz(1))
    row = list(before) + [3 + (i % (len(tok) - 3)) for i in range(audio_tokens)] + list(after)
    ids = torch.tensor([row], device=b.device)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    result.notes = "pipeline.decoding.greedy_decode on text ids, as many prompt tokens as encoder_free"

    @torch.inference_mode()
    def run() -> dict:
        start = time.perf_counter()
        out = greedy_decode(llm, llm.get_input_embeddings()(ids), torch.ones_like(ids), None,
                            max_new_tokens=b.sizes.gen_tokens, stop_token_ids=[], pad_token_id=pad, start_time=start)
        return {"ttft": out.first_token_s[0], "new_tokens": len(out.token_ids[0]), "prefix": len(row), "audio": 0}

    return run


def run_bridge(b: Builder, audio: np.ndarray, result: Result) -> Callable[[], dict]:
    from pipeline.eval.systems import BridgeSystem
    from pipeline.models.bridge import BridgeProjector

    llm = b.llm()
    teacher = b.teacher(b.whisper_encoder(), layers=[b.sizes.whisper_layers])
    with default_dtype_and_device(b.dtype, b.device):
        projector = BridgeProjector(b.sizes.whisper_width, b.sizes.llm_hidden, stack=b.sizes.bridge_stack)
    system = BridgeSystem(teacher, projector, llm, b.tokenizer())
    system.stop_ids = []
    result.notes = ("pipeline.eval.systems.BridgeSystem.answer: Whisper encodes the padded 30 s window; the frames of "
                    f"its last layer ({b.sizes.whisper_layers}) that cover real audio are stacked x{b.sizes.bridge_stack} "
                    "by the projector")

    def run() -> dict:
        r = system.answer(audio, INSTRUCTION, task="spoken_qa", max_new_tokens=b.sizes.gen_tokens)
        return {"ttft": r.time_to_first_token_s, "new_tokens": r.new_tokens, "prefix": r.prompt_tokens,
                "audio": r.num_audio_tokens}

    return run


def run_cascade(b: Builder, audio: np.ndarray, result: Result) -> Callable[[], dict]:
    from pipeline.data.mel import WHISPER_WINDOW_SAMPLES, MelSettings, log_mel
    from pipeline.decoding import greedy_decode
    from pipeline.models.sequence import layout_speech_batch
    from pipeline.prompts import prompt_ids

    llm = b.llm()
    whisper = b.whisper_full()
    tok = b.tokenizer()
    mel_settings = MelSettings(n_mels=b.sizes.n_mels)
    before, after = prompt_ids(tok, INSTRUCTION)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    wkw, device = cache_kwarg(whisper), b.device
    sot = whisper.config.decoder_start_token_id
    decoder_prompt = torch.tensor([[sot, sot + 1, sot + 2, sot + 3]], device=device)  # sot, lang, task, notimestamps
    result.notes = ("Whisper: log-mel of the 30 s window on the device, encoder once, greedy decoder with "
                    f"EncoderDecoderCache for {b.sizes.transcript_tokens} tokens; LLM: pipeline.decoding.greedy_decode "
                    "on the chat prompt with the transcript where AuRA puts the audio")

    @torch.inference_mode()
    def transcribe() -> list[int]:
        from transformers import DynamicCache, EncoderDecoderCache

        padded = torch.zeros(1, WHISPER_WINDOW_SAMPLES)
        padded[0, : len(audio)] = torch.from_numpy(audio)
        features = log_mel(padded.to(device), mel_settings).to(b.dtype)
        encoder_out = whisper.model.encoder(input_features=features)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        out = whisper(encoder_outputs=encoder_out, decoder_input_ids=decoder_prompt, use_cache=True, **{wkw: cache})
        ids: list[int] = []
        for step in range(b.sizes.transcript_tokens):
            next_id = out.logits[:, -1].argmax(-1)
            ids.append(int(next_id))  # one host sync per token, as a real decoder needs to stop
            if step == b.sizes.transcript_tokens - 1:
                break
            out = whisper(encoder_outputs=encoder_out, decoder_input_ids=next_id[:, None], use_cache=True,
                          **{wkw: cache})
        return ids

    @torch.inference_mode()
    def run() -> dict:
        start = time.perf_counter()
        transcript = transcribe()
        # Detokenize/retokenize is host work of microseconds; the LLM sees as many text tokens as Whisper wrote.
        text_ids = [3 + (i % (len(tok) - 3)) for i in transcript]
        row = list(before) + text_ids + list(after)
        batch = layout_speech_batch([row], [0], pad_id=pad, padding_side="left")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        out = greedy_decode(llm, llm.get_input_embeddings()(ids), mask, None, max_new_tokens=b.sizes.gen_tokens,
                            stop_token_ids=[], pad_token_id=pad, start_time=start)
        return {"ttft": out.first_token_s[0], "new_tokens": len(out.token_ids[0]), "prefix": len(row), "audio": 0,
                "transcript_tokens": len(transcript)}

    return run


# ---------------------------------------------------------------------------------------------- training
def run_training(b: Builder, audios: list[np.ndarray], result: Result, live: bool) -> Callable[[], dict]:
    from pipeline.models.distillation import distillation_loss

    student = b.student(b.llm())
    student.train()
    layers = b.teacher_layers
    optimizer = torch.optim.AdamW(student.trainable_parameters(), lr=1e-4)
    trainable = sum(p.numel() for p in student.trainable_parameters())
    if live:
        teacher = b.teacher(b.whisper_encoder(), layers=layers)
        cached = None
    else:  # as read from the store: float32 on the host, (frames, width) per layer and utterance
        teacher = None
        frames = student.patch_embedding.num_tokens(len(audios[0]))
        gen = torch.Generator().manual_seed(b.seed)
        cached = {j: torch.randn(len(audios), frames, b.sizes.whisper_width, generator=gen) for j in layers}
    result.notes = (f"forward_distill to layer {student.distill_depth} of {b.sizes.llm_layers}, LoRA r={b.sizes.lora_rank} "
                    f"on the first {student.lora_layers} layers, {len(layers)} heads, AdamW; "
                    f"{trainable / 1e6:.1f} M trainable parameters; targets "
                    + ("from WhisperTeacher.encode in the step" if live else "host tensors moved to the device"))

    def run() -> dict:
        mel, token_lengths = student.patch_embedding.mel_batch(audios)
        out = student.forward_distill(mel.to(b.device, b.dtype), token_lengths.to(b.device))
        if live:
            states = teacher.encode(audios)  # list of (layers, frames, width) float32
            targets = {j: torch.from_numpy(np.stack([s[i] for s in states])) for i, j in enumerate(layers)}
        else:
            targets = cached
        loss, _ = distillation_loss(out["layer_states"], targets, out["token_mask"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {"audio": int(token_lengths.max()), "loss": float(loss.detach())}

    return run


# ---------------------------------------------------------------------------------------------- driver
VARIANTS = {
    "llm_alone": ("inference", run_llm_alone),
    "encoder_free": ("inference", run_encoder_free),
    "bridge": ("inference", run_bridge),
    "cascade": ("inference", run_cascade),
    "cached_targets": ("training", lambda b, a, r: run_training(b, a, r, live=False)),
    "live_teacher": ("training", lambda b, a, r: run_training(b, a, r, live=True)),
}


def measure(name: str, b: Builder, meter: MemoryMeter) -> Result:
    kind, factory = VARIANTS[name]
    result = Result(name, LABELS[name], kind, mem_kind=meter.kind)
    s = b.sizes
    try:
        t0 = time.perf_counter()
        if kind == "inference":
            run = factory(b, speechlike(s.utterance_s, seed=b.seed), result)
            warmup, reps = s.warmup, s.reps
        else:
            run = factory(b, [speechlike(s.utterance_s, seed=b.seed + i) for i in range(s.train_batch)], result)
            warmup, reps = s.train_warmup, s.train_steps
        synchronize(b.device)
        result.build_s = time.perf_counter() - t0
        meter.reset()
        result.weights_gb = meter.current_gb()
        times, infos = timed_runs(run, warmup, reps, b.device)
        result.peak_mem_gb = meter.peak_gb()
        result.reserved_gb = meter.reserved_gb()
        result.times_s = [round(t, 5) for t in times]
        result.median_s = median(times)
        last = infos[-1] if infos else {}
        result.ttft_s = median([i["ttft"] for i in infos if "ttft" in i])
        result.new_tokens, result.prefix_tokens, result.audio_tokens = last.get("new_tokens"), last.get("prefix"), last.get("audio")
        if "transcript_tokens" in last:
            result.notes += f"; transcript {last['transcript_tokens']} tokens"
    except Exception as exc:  # one variant failing (e.g. out of memory) must not lose the others
        result.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        run = None  # noqa: F841 -- drop the closure and its models before the next variant
        gc.collect()
        if b.device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def ratios(results: list[Result]) -> dict[str, float]:
    by = {r.variant: r for r in results if r.error is None and r.median_s}
    out = {}
    pairs = (("llm_alone", ("encoder_free",)), ("encoder_free", ("bridge", "cascade")),
             ("cached_targets", ("live_teacher",)))
    for base, others in pairs:
        if base not in by:
            continue
        for other in others:
            if other in by:
                out[f"time_{other}_over_{base}"] = round(by[other].median_s / by[base].median_s, 3)
                if by[other].peak_mem_gb and by[base].peak_mem_gb:
                    out[f"mem_{other}_over_{base}"] = round(by[other].peak_mem_gb / by[base].peak_mem_gb, 3)
    return out



def _result_rows(report: dict, kind: str, cells) -> list[str]:
    """One markdown table row per result of ``kind``: its label and ``cells(result)``, or its error."""
    rows = []
    for r in report["results"]:
        if r["kind"] != kind:
            continue
        values = cells(r) if not r["error"] else [f"error: {r['error'][:120]}"]
        rows.append("| " + " | ".join([r["label"], *values]) + " |")
    return rows

def markdown(report: dict) -> str:
    env = report["environment"]
    mem = "GPU peak (max_memory_allocated)" if env["device"].startswith("cuda") else "CPU peak RSS (process)"
    lines = [
        "# GPU check: AuRA vs bridge vs cascade, cached vs live teacher",
        "",
        f"{'TOY sizes (code check, numbers meaningless)' if report['toy'] else 'Paper-scale architectures, random weights'}; "
        f"device {env['device_name']} ({env['device']}), {env['dtype']}, torch {env['torch']}, "
        f"transformers {env['transformers']}; {report['wall_s']:.0f} s wall.",
        "",
        "## Inference (one ~{:.0f} s utterance, {} generated tokens each)".format(report["sizes"]["utterance_s"],
                                                                              report["sizes"]["gen_tokens"]),
        "",
        f"| system | latency median (s) | time to first token (s) | {mem} GiB | after build GiB | prefix tokens | audio tokens | new tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += _result_rows(report, "inference", lambda r: [
        format_value(r["median_s"]), format_value(r["ttft_s"]), format_value(r["peak_mem_gb"], 2),
        format_value(r["weights_gb"], 2), format_value(r["prefix_tokens"]), format_value(r["audio_tokens"]),
        format_value(r["new_tokens"])])
    lines += [
        "",
        "## Training step (stage 1, batch {} x {:.0f} s)".format(report["sizes"]["train_batch"],
                                                               report["sizes"]["utterance_s"]),
        "",
        f"| targets | step median (s) | {mem} GiB | after build GiB | audio tokens |",
        "|---|---|---|---|---|",
    ]
    lines += _result_rows(report, "training", lambda r: [
        format_value(r["median_s"]), format_value(r["peak_mem_gb"], 2), format_value(r["weights_gb"], 2),
        format_value(r["audio_tokens"])])
    if report["ratios"]:
        lines += ["", "## Ratios (same run, same device)", "", "| ratio | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in report["ratios"].items()]
    lines += ["", "## Notes", "",
              "- peak memory counts the variant's weights (built before the reset) and its run; 'after build' is "
              "what was allocated (GPU) or resident (CPU, whole process) before the timed runs",
              "- every system generates exactly the same number of tokens (stop tokens ignored: weights are random)"]
    lines += [f"- **{r['variant']}**: {r['notes']}" for r in report["results"] if r["notes"]]
    skipped = report.get("skipped") or []
    if skipped:
        lines.append(f"- skipped (time budget): {', '.join(skipped)}")
    return "\n".join(lines) + "\n"


def environment(device: torch.device, dtype: torch.dtype) -> dict:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"device": str(device), "device_name": name, "dtype": str(dtype).removeprefix("torch."),
            "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads()}


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".gpu_check.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out / "gpu_check.json")
    (out / "gpu_check.md").write_text(markdown(report))


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if args.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, args.dtype)
    started = time.perf_counter()
    builder = Builder(sizes, device, dtype, args.seed)
    meter = MemoryMeter(device)
    wanted = [v.strip() for v in args.only.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    report: dict[str, Any] = {"toy": args.toy, "sizes": asdict(sizes), "environment": environment(device, dtype),
                              "results": [], "ratios": {}, "skipped": [], "wall_s": 0.0,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    builder.tokenizer()  # built once (offline), outside every measurement
    for name in wanted:
        if time.perf_counter() - started > args.budget_s:
            report["skipped"].append(name)
            continue
        print(f"[gpu_check] {name} ...", flush=True)
        result = measure(name, builder, meter)
        report["results"].append(asdict(result))
        report["ratios"] = ratios([Result(**r) for r in report["results"]])
        report["wall_s"] = time.perf_counter() - started
        write(report, args.out)
        print(f"[gpu_check] {name}: median {format_value(result.median_s)} s, peak {format_value(result.peak_mem_gb, 2)} GiB "
              f"({meter.kind}), build {format_value(result.build_s, 1)} s" + (f", ERROR {result.error}" if result.error else ""),
              flush=True)
    report["wall_s"] = time.perf_counter() - started
    write(report, args.out)
    print((args.out / "gpu_check.md").read_text())
    return 0 if all(r["error"] is None for r in report["results"]) and not report["skipped"] else 1


if __name__ == "__main__":
    sys.exit(main())
