"""``aura eval``: the held-out evaluation of AuRA against its baselines, and the report.

On the held-out split (voices and texts never trained on), in one process, one system after another:

1. distillation (:mod:`pipeline.eval.probe`): per-layer cosine of the student's heads (stage-1 export,
   and the stage-2 export when it exists) to the cached teacher states, in the space the student was
   trained in, beside a constant and a position-mean predictor; and the probe WER: Whisper's decoder
   reading the student's prediction of the teacher's last layer;
2. for each system (``aura`` encoder-free, ``bridge``, ``cascade``, ``text``-only; see
   :mod:`pipeline.eval.systems`): load it, answer every held-out utterance one request at a time
   (one untimed warm-up request first), and record WER on transcription rows, QA accuracy on
   spoken-QA rows, latency p50/p95 and time to first token per utterance, and the system's peak
   memory (:class:`~pipeline.eval.metrics.PeakMemory`); then free it before the next system;
3. optional external spoken-QA sets (``--dataset sdqa:PATH``, ``--dataset heysquad:PATH[:AUDIO_DIR]``,
   :mod:`pipeline.eval.datasets`) run through the same loaded systems;
4. :func:`pipeline.eval.report.write_report` writes ``report.md``, ``report.json`` and PNG plots to
   ``cfg.paths.reports``.

The bridge needs a trained projector (``<checkpoints>/bridge/projector.safetensors``); by default
it is trained when missing (``--train-bridge auto``) with AuRA's stage-2 budget. A system that cannot
be built (no trained AuRA export yet, no store) is reported as skipped with the reason.

Usage::

    aura eval --config configs/demo.yaml
    aura eval --config configs/demo.yaml --systems aura,cascade --max-samples 40 --device cuda
    aura eval --config configs/demo.yaml --dataset sdqa:/data/SD-QA/dev/eng --max-samples 200

    >>> results = run_eval(load_config("configs/demo.yaml"))          # doctest: +SKIP
    >>> results["systems"]["aura"]["sets"]["heldout"]["wer"]["wer"]  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.config import AuraConfig
from pipeline.data.mel import WHISPER_SAMPLE_RATE
from pipeline.eval import DEFAULT_SYSTEMS, SYSTEMS
from pipeline.eval.metrics import (
    QA_WINDOW,
    LatencyStats,
    PeakMemory,
    qa_accuracy,
    qa_correct,
    word_error_rate,
)
from pipeline.layout import RunLayout
from pipeline.prompts import instruction_for, spoken_text, target_for

if TYPE_CHECKING:
    from pipeline.eval.systems import EvalSystem

log = logging.getLogger(__name__)

MAX_SAMPLES_IN_JSON = 50


@dataclass
class EvalItem:
    """One request of the evaluation."""

    key: str
    task: str  # transcribe | spoken_qa
    audio: np.ndarray  # 16 kHz mono float32
    instruction: str
    reference: str  # what WER / QA scores against (the transcript, or the first answer)
    answers: list[str] = field(default_factory=list)  # QA: every accepted answer
    transcript: str = ""  # the words spoken (the text-only system reads these)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / WHISPER_SAMPLE_RATE


# ------------------------------------------------------------------------------------------------
# Data


def _interleave_by_task(rows: list[dict], limit: int | None) -> list[dict]:
    """Alternate tasks so that a ``limit`` keeps both transcription and QA rows."""
    if limit is None or limit >= len(rows):
        return rows
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r.get("task") or "transcribe", []).append(r)
    out: list[dict] = []
    queues = [list(v) for _, v in sorted(by_task.items())]
    while len(out) < limit and any(queues):
        for q in queues:
            if q and len(out) < limit:
                out.append(q.pop(0))
    return out


def heldout_items(cfg: AuraConfig, max_samples: int | None = None) -> tuple[list[EvalItem], list[str]]:
    """The held-out requests (``split == "heldout"``) of the shards and their keys, whether or not the feature store
    holds their teacher targets yet: a store still being computed, or not yet grown with its corpus, must not shrink
    what the systems are judged on (only the cosine probe needs targets, and reads its own)."""
    from pipeline.data.shards import ShardSet
    from pipeline.train.data import TrainingData

    data = TrainingData(ShardSet(cfg.paths.shards), None, split="heldout", tasks=["transcribe", "spoken_qa"])
    rows = _interleave_by_task([data.rows[k] for k in data.keys()], max_samples)
    items = []
    for row in rows:
        task = row.get("task") or "transcribe"
        reference = target_for(row)
        items.append(EvalItem(key=row["key"], task=task, audio=np.asarray(data.audio(row["key"]), dtype=np.float32),
                              instruction=instruction_for(task), reference=reference,
                              answers=[reference] if task == "spoken_qa" else [],
                              transcript=spoken_text(row)))
    return items, [r["key"] for r in rows]


def external_items(cfg: AuraConfig, spec: str, max_samples: int | None = None,
                   with_context: bool = False) -> tuple[str, list[EvalItem], int]:
    """Requests from ``FORMAT:PATH[:AUDIO_DIR]`` (:mod:`pipeline.eval.datasets`): ``(name, items, rejected)``."""
    from pipeline.data.audio import AudioRejected, load_checked
    from pipeline.eval.datasets import load_spoken_qa, parse_dataset_arg

    fmt, path, audio_dir = parse_dataset_arg(spec)
    kwargs = {"audio_dir": audio_dir} if audio_dir is not None else {}
    items, rejected = [], 0
    for row in load_spoken_qa(fmt, path, **kwargs):
        if max_samples is not None and len(items) >= max_samples:
            break
        try:
            audio = load_checked(row.audio, cfg.ingest).samples
        except (AudioRejected, OSError) as exc:
            log.warning("%s: %s rejected: %s", spec, row.audio, getattr(exc, "reason", exc))
            rejected += 1
            continue
        instruction = instruction_for("spoken_qa")
        if with_context and row.context:
            instruction = f"Context: {row.context[:2000]}\n{instruction}"
        items.append(EvalItem(key=row.key, task="spoken_qa", audio=np.asarray(audio, dtype=np.float32),
                              instruction=instruction, reference=row.answer, answers=list(row.answers),
                              transcript=row.text))
    return f"{fmt}:{Path(path).name}", items, rejected


# ------------------------------------------------------------------------------------------------
# Running systems


def free_memory() -> None:
    """Drop freed tensors and hand freed heap pages back to the OS, so the next system's RSS starts clean."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_items(system: EvalSystem, items: Sequence[EvalItem], max_new_tokens: int, progress: bool = True,
              desc: str | None = None) -> list[dict[str, Any]]:
    """Answer every item, one request at a time; one record per item."""
    from tqdm import tqdm

    records = []
    for item in tqdm(items, desc=desc or f"eval: {system.name}", disable=not progress, unit="utt"):
        result = system.answer(item.audio if system.needs_audio else None, item.instruction, task=item.task,
                               transcript=item.transcript, max_new_tokens=max_new_tokens)
        record = {"key": item.key, "task": item.task, "reference": item.reference, "prediction": result.text,
                  "latency_s": result.latency_s, "ttft_s": result.time_to_first_token_s,
                  "audio_tokens": result.num_audio_tokens, "prompt_tokens": result.prompt_tokens,
                  "new_tokens": result.new_tokens, "duration_s": round(item.duration_s, 3)}
        if item.task == "spoken_qa":
            record["correct"] = qa_correct(result.text, item.answers or [item.reference])
        records.append(record)
    return records


def summarize(records: Sequence[dict], items: Sequence[EvalItem]) -> dict[str, Any]:
    """WER, QA accuracy, latency and token statistics of one system on one set."""
    by_key = {i.key: i for i in items}
    trans = [r for r in records if r["task"] == "transcribe"]
    qa = [r for r in records if r["task"] == "spoken_qa"]
    wer = word_error_rate([r["reference"] for r in trans], [r["prediction"] for r in trans]) if trans else None
    acc = qa_accuracy([r["prediction"] for r in qa], [by_key[r["key"]].answers or [r["reference"]] for r in qa]) if qa else None
    audio_s = sum(r["duration_s"] for r in records)
    return {
        "utterances": len(records),
        "wer": wer.to_dict() if wer else None,
        "qa": acc.to_dict() if acc else None,
        "latency": LatencyStats.from_samples([r["latency_s"] for r in records]).to_dict(),
        "ttft": LatencyStats.from_samples([r["ttft_s"] for r in records]).to_dict(),
        "latency_by_task": {t: LatencyStats.from_samples([r["latency_s"] for r in records if r["task"] == t]).to_dict()
                            for t in sorted({r["task"] for r in records})},
        "audio_tokens_mean": float(np.mean([r["audio_tokens"] for r in records])) if records else None,
        "new_tokens_mean": float(np.mean([r["new_tokens"] for r in records])) if records else None,
        "real_time_factor": (sum(r["latency_s"] for r in records) / audio_s) if audio_s else None,
        "samples": list(records[:MAX_SAMPLES_IN_JSON]),
    }


def evaluate_system(name: str, cfg: AuraConfig, sets: dict[str, list[EvalItem]], device=None, dtype=None,
                    max_new_tokens: int = 48, progress: bool = True, **load_kwargs) -> dict[str, Any]:
    """Load one system, measure its peak memory over a warm-up and every set, free it."""
    from pipeline.eval.systems import load_system
    from pipeline.runtime import resolve_device

    meter = PeakMemory(str(resolve_device(device)))
    free_memory()
    meter.baseline()  # before loading: the system's weights count toward its peak
    started = time.perf_counter()
    try:
        system = load_system(name, cfg, device=device, dtype=dtype, **load_kwargs)
    except (FileNotFoundError, OSError, ValueError, RuntimeError) as exc:
        # e.g. no trained export yet, no projector, a store or model that does not fit: report, go on
        log.warning("system %s skipped: %s: %s", name, type(exc).__name__, exc)
        return {"status": "skipped", "reason": str(exc) if isinstance(exc, FileNotFoundError)
                else f"{type(exc).__name__}: {exc}"}
    load_s = time.perf_counter() - started
    out: dict[str, Any] = {"status": "ok", "describe": system.describe(), "load_s": load_s, "sets": {}}
    first = next((items[0] for items in sets.values() if items), None)
    meter_started = False
    try:
        meter.start()
        meter_started = True
        if first is not None:  # warm-up: first-call costs stay out of the percentiles
            system.answer(first.audio if system.needs_audio else None, first.instruction, task=first.task,
                          transcript=first.transcript, max_new_tokens=max_new_tokens)
        for set_name, items in sets.items():
            records = run_items(system, items, max_new_tokens, progress, desc=f"eval {set_name}: {name}")
            out["sets"][set_name] = summarize(records, items)
    finally:
        if meter_started:
            out["memory"] = meter.stop().to_dict()
        del system
        free_memory()
    return out


def run_eval(cfg: AuraConfig, systems: Sequence[str] = DEFAULT_SYSTEMS, max_samples: int | None = None,
             device: str | None = None, dtype: str | None = None, export_path: str | Path | None = None,
             projector_path: str | Path | None = None, train_bridge_mode: str = "auto",
             bridge_steps: int | None = None, bridge_batch_size: int | None = None, bridge_stack: int = 4,
             datasets: Sequence[str] = (), with_context: bool = False, out_dir: str | Path | None = None,
             cosine: bool = True, progress: bool = True) -> dict[str, Any]:
    """Evaluate ``systems`` on the held-out split (and ``datasets``), write the report; returns the results.

    ``train_bridge_mode``: ``auto`` trains the bridge projector when it is missing, ``always``
    retrains it, ``never`` skips the bridge when there is none.
    """
    from pipeline.models.bridge import load_projector
    from pipeline.train.bridge import stage2_budget, train_bridge
    from pipeline.eval.probe import distillation_summary, probe_export
    from pipeline.eval.report import write_report
    from pipeline.runtime import resolve_device, resolve_dtype

    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; choose from {SYSTEMS}")
    device_t = resolve_device(device)
    dtype_t = resolve_dtype(dtype, device_t)
    max_samples = max_samples if max_samples is not None else cfg.eval.max_samples
    out_dir = Path(out_dir) if out_dir is not None else Path(cfg.paths.reports)
    notes: list[str] = []

    store = None
    try:
        from pipeline.store import open_store_for

        store = open_store_for(cfg, mode="r")
    except Exception as exc:  # noqa: BLE001 - reported; systems that need no store still run
        notes.append(f"feature store not usable ({type(exc).__name__}: {exc}); cosine and bridge training skipped")
    items, keys = heldout_items(cfg, max_samples)
    if not items:
        raise RuntimeError(f"no held-out utterances in {cfg.paths.shards} (manifest rows with split 'heldout')")
    if store is not None and cosine:
        stored = set(store.keys())
        missing = sum(key not in stored for key in keys)
        if missing:
            notes.append(f"the feature store holds teacher targets for {len(keys) - missing} of the {len(keys)} "
                         f"held-out utterances (`aura precompute` computes the rest): the cosine is measured on those")
    sets: dict[str, list[EvalItem]] = {"heldout": items}
    for spec in datasets:
        name, ext_items, rejected = external_items(cfg, spec, max_samples, with_context)
        sets[name] = ext_items
        if rejected:
            notes.append(f"{name}: {rejected} audio file(s) rejected by the ingest checks")

    results: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": {"teacher": cfg.models.teacher, "llm": cfg.models.llm},
        "device": device_t.type, "dtype": str(dtype_t).removeprefix("torch."),
        "max_new_tokens": cfg.eval.max_new_tokens, "qa_window": QA_WINDOW,
        "ctc_search": {"beam": cfg.eval.ctc_beam, "lm_weight": cfg.eval.ctc_lm_weight,
                       "length_bonus": cfg.eval.ctc_length_bonus},
        "memory_method": ("torch.cuda.max_memory_allocated" if device_t.type == "cuda"
                          else "process RSS high-water mark (VmHWM, reset per system)"),
        "dataset": {"name": "heldout", "utterances": len(items),
                    "transcribe": sum(i.task == "transcribe" for i in items),
                    "spoken_qa": sum(i.task == "spoken_qa" for i in items),
                    "audio_seconds": sum(i.duration_s for i in items)},
        "external_sets": {k: len(v) for k, v in sets.items() if k != "heldout"},
        "cosine": {}, "systems": {}, "notes": notes,
    }

    # 1. distillation cosine of the student heads
    if cosine and store is not None:
        for stage in ("distill", "tasks"):
            path = RunLayout.of(cfg).student(stage)
            if path.is_file():
                probed = probe_export(cfg, path, split="heldout", max_samples=len(keys), progress=progress,
                                     label=f"{stage} export")
                results["cosine"][stage] = distillation_summary(probed)
                free_memory()
        if not results["cosine"]:
            notes.append("no student export under checkpoints/{distill,tasks}/export: cosine not measured")

    # 2. the bridge projector
    proj = Path(projector_path) if projector_path is not None else RunLayout.of(cfg).projector
    if "bridge" in systems and store is not None and (train_bridge_mode == "always"
                                                      or (train_bridge_mode == "auto" and not proj.is_file())):
        steps, batch = stage2_budget(cfg)
        trained = train_bridge(cfg, proj, steps=bridge_steps or steps, batch_size=bridge_batch_size or batch,
                               stack=bridge_stack, device=device_t, dtype=dtype_t, progress=progress, store=store)
        results["bridge_training"] = trained.to_dict()
        free_memory()
    elif "bridge" in systems and proj.is_file():
        _, meta = load_projector(proj)
        results["bridge_training"] = {"path": str(proj), "steps": meta.get("steps"), "batch_size": meta.get("batch_size"),
                                      "last_loss": meta.get("final_loss"), "source": meta.get("teacher_source")}

    # 3. every system, one after another
    for name in systems:
        kwargs = {"export_path": export_path} if name in ("aura", "aura_ctc") else {}
        if name == "bridge":
            kwargs = {"projector_path": proj}
        results["systems"][name] = evaluate_system(name, cfg, sets, device_t, dtype_t, cfg.eval.max_new_tokens,
                                                   progress, **kwargs)

    paths = write_report(results, out_dir, cfg.paths.checkpoints)
    results["report"] = {k: str(v) for k, v in paths.items()}
    return results
