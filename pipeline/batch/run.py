"""The batch-inference driver: plan the requests, answer the missing parts with a Ray Data actor pool,
then gather the results and the throughput.

    >>> from pipeline.config import load_config
    >>> summary = run_batch(load_config("configs/demo.yaml"), "clips/manifest.jsonl", "out/")  # doctest: +SKIP
    >>> summary.answered, summary.failed, round(summary.audio_hours_per_hour)               # doctest: +SKIP
    (400, 0, 180)
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.batch.plan import BatchOutput, extend_plan, requests_from_source
from pipeline.config import AuraConfig
from pipeline.fs import atomic_write_text, file_sha256
from pipeline.layout import RunLayout

log = logging.getLogger(__name__)

BATCH_SYSTEMS = ("aura", "aura_ctc", "cascade", "bridge")
_FORMAT_VERSION = 1


@dataclass
class BatchSummary:
    """What one run of the job did, and the state of the whole output after it."""

    requests: int  # in the plan
    parts: int
    parts_before: int  # already written when this run started
    parts_answered: int  # written by this run
    answered: int  # rows with an answer, whole output
    failed: int  # rows with an error, whole output
    audio_s: float  # audio of the rows this run answered
    wall_s: float  # this run, model loading and Ray start included
    compute_s: float  # summed over the parts this run answered (each worker's time in its parts)
    workers: int
    results: str | None  # results.parquet, once every part is written

    @property
    def audio_hours_per_hour(self) -> float:
        """Audio answered per wall-clock time of this run (everything included)."""
        return self.audio_s / self.wall_s if self.wall_s else 0.0

    @property
    def audio_hours_per_worker_hour(self) -> float:
        """Audio answered per second a worker spent in its parts (loading and start-up excluded)."""
        return self.audio_s / self.compute_s if self.compute_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "audio_hours_per_hour": round(self.audio_hours_per_hour, 2),
                "audio_hours_per_worker_hour": round(self.audio_hours_per_worker_hour, 2)}

    def describe(self) -> str:
        lines = [f"infer-batch: {self.answered} answered, {self.failed} failed of {self.requests} requests "
                 f"({self.parts_answered} part(s) now, {self.parts_before} from before, {self.parts} in all)"]
        if self.parts_answered:
            lines.append(f"infer-batch: {self.audio_s / 3600:.3f} h of audio in {self.wall_s:.1f} s: "
                         f"{self.audio_hours_per_hour:.1f} audio h/h ({self.audio_hours_per_worker_hour:.1f} per "
                         f"worker-hour in the parts, {self.workers} worker(s))")
        if self.results:
            lines.append(f"infer-batch: results in {self.results}")
        return "\n".join(lines)


def job_identity(cfg: AuraConfig, system: str, export: str | Path | None, projector: str | Path | None,
                 max_new_tokens: int, dtype: str) -> tuple[dict[str, Any], str | None, str | None]:
    """What makes two runs' answers comparable: the system, its model files (by content) and the
    generation settings. Returns it with the export and projector paths resolved."""
    from pipeline.infer import trained_export_path

    if system not in BATCH_SYSTEMS:
        raise ValueError(f"unknown system {system!r}; choose from {', '.join(BATCH_SYSTEMS)}")
    job: dict[str, Any] = {"format_version": _FORMAT_VERSION, "system": system, "max_new_tokens": max_new_tokens,
                           "dtype": dtype, "llm": cfg.models.llm}
    export_path = projector_path = None
    if system == "aura":
        export_path = Path(export) if export is not None else trained_export_path(cfg)
        if not export_path.is_file():
            raise FileNotFoundError(f"trained student not found: {export_path}")
        job["export_sha256"] = file_sha256(export_path)
    else:
        job["whisper"] = cfg.models.teacher
    if system == "bridge":
        projector_path = Path(projector) if projector is not None else RunLayout.of(cfg).projector
        if not projector_path.is_file():
            raise FileNotFoundError(f"bridge projector not found: {projector_path} (run `aura eval` to train it)")
        job["projector_sha256"] = file_sha256(projector_path)
    return job, (str(export_path) if export_path else None), (str(projector_path) if projector_path else None)


def _quiet_ray_data() -> None:
    """One progress bar (ours) instead of Ray Data's operator bars and execution-plan logs."""
    import ray.data

    from pipeline.cluster import quiet_ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    quiet_ray()


def _map_parts(parts, **map_batches_kwargs):
    """``parts.map_batches(...)`` with actors that Ray does not restart (see :func:`run_batch`)."""
    import warnings

    from ray.util.annotations import RayDeprecationWarning

    try:
        with warnings.catch_warnings():  # Ray >= 2.51 names remote args it will drop in 2.64; max_restarts has no successor
            warnings.simplefilter("ignore", RayDeprecationWarning)
            return parts.map_batches(**map_batches_kwargs, max_restarts=0)
    except TypeError:  # a Ray without the argument: its default restarts actors (and prints a notice per actor)
        return parts.map_batches(**map_batches_kwargs)


def run_batch(cfg: AuraConfig, source: str | Path, out_dir: str | Path, *, system: str = "aura",
              export: str | Path | None = None, projector: str | Path | None = None, instruction: str | None = None,
              split: str | None = None, max_new_tokens: int | None = None, device: str = "auto",
              dtype: str = "auto", progress: bool = True) -> BatchSummary:
    """Answer every request of ``source`` not yet answered in ``out_dir`` (see :mod:`pipeline.batch`)."""
    import ray
    from tqdm import tqdm

    from pipeline.batch.worker import PartAnswerer
    from pipeline.cluster import cluster_has_gpu, init_ray

    started = time.perf_counter()
    max_new_tokens = max_new_tokens or cfg.eval.max_new_tokens
    job, export_path, projector_path = job_identity(cfg, system, export, projector, max_new_tokens, dtype)
    out = BatchOutput(out_dir)
    out.prepare(job)
    plan = extend_plan(out.read_plan(), requests_from_source(source, cfg.ingest, instruction, split),
                       cfg.batch.part_size)
    out.write_plan(plan)
    parts = sorted({r["part"] for r in plan})
    done_before = out.done_parts() & set(parts)
    pending = [p for p in parts if p not in done_before]
    print(f"infer-batch: {len(plan)} requests in {len(parts)} part(s); {len(done_before)} written before, "
          f"{len(pending)} to answer with {system}")
    workers, audio_s, compute_s = 0, 0.0, 0.0
    if pending:
        init_ray(cfg.batch.address)
        _quiet_ray_data()
        gpu = cluster_has_gpu(cfg.batch.use_gpu, "batch.use_gpu")
        workers = cfg.batch.num_workers or (int(ray.cluster_resources().get("GPU", 1)) if gpu else 1)
        workers = min(workers, len(pending))
        worker_kwargs = dict(config_json=cfg.model_dump_json(), out_dir=str(Path(out_dir).absolute()), system=system,
                             max_new_tokens=max_new_tokens, batch_size=cfg.batch.batch_size,
                             threads=cfg.batch.threads_per_worker, export=export_path, projector=projector_path,
                             device=device, dtype=dtype)
        rows_of = Counter(r["part"] for r in plan)
        with tqdm(total=sum(rows_of[p] for p in pending), unit="req", desc="infer-batch", disable=not progress) as bar:
            # Ray restarts no actor (Ray Data would keep the constructor in the object store and say so for
            # every actor); a lost worker ends the pass instead and the next pass answers what is missing.
            for attempt in range(cfg.batch.max_restarts + 1):
                written = out.done_parts()  # one folder listing per pass
                todo = [p for p in pending if p not in written]
                if not todo:
                    break
                try:
                    answered = _map_parts(
                        ray.data.from_items([{"part": p} for p in todo], override_num_blocks=len(todo)),
                        fn=PartAnswerer, batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(workers, len(todo))),
                        num_cpus=cfg.batch.threads_per_worker, num_gpus=1 if gpu else 0,
                        fn_constructor_kwargs=worker_kwargs)
                    for part in answered.iter_rows():
                        audio_s += part["audio_s"]
                        compute_s += part["compute_s"]
                        bar.update(part["rows"])
                except ray.exceptions.RayError as exc:
                    if attempt == cfg.batch.max_restarts:
                        raise
                    written = out.done_parts()
                    missing = [p for p in todo if p not in written]
                    bar.write(f"infer-batch: a worker was lost ({type(exc).__name__}); "
                              f"answering the {len(missing)} unwritten part(s) again")
    results = out.read_results()
    errors = results.column("error").to_pylist()
    complete = out.done_parts() >= set(parts)
    summary = BatchSummary(
        requests=len(plan), parts=len(parts), parts_before=len(done_before), parts_answered=len(pending),
        answered=sum(e is None for e in errors), failed=sum(e is not None for e in errors), audio_s=round(audio_s, 3),
        wall_s=round(time.perf_counter() - started, 3), compute_s=round(compute_s, 3), workers=workers,
        results=str(out.write_results(results)) if complete else None)
    atomic_write_text(out.summary_path, json.dumps({**summary.to_dict(), "job": job}, indent=2) + "\n")
    return summary
