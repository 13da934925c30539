"""``aura precompute``: run the frozen Whisper teacher once, in Ray, and cache its layers in the store.

The driver compares the shards listed in the manifest with the store's committed groups and hands
only the missing ones to a pool of Ray actors, each holding one teacher (one GPU per actor when GPUs
exist, CPU actors otherwise). An actor claims a shard with a lease, encodes its utterances in
length-sorted batches and writes one store group, committed last; a killed actor leaves an
uncommitted group that the next run redoes. Two jobs on one store never write the same group.

Usage::

    >>> from pipeline.config import load_config
    >>> summary = run_precompute(load_config("configs/demo.yaml"))        # doctest: +SKIP
    >>> summary.computed, summary.skipped_committed  # doctest: +SKIP
    (10, 0)
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from feature_store import FeatureStore, StoreFingerprint
from pipeline.cluster import cluster_has_gpu, init_ray
from pipeline.config import AuraConfig
from pipeline.data.mel import WHISPER_SAMPLE_RATE
from pipeline.data.shards import ShardFormatError, ShardSet
from pipeline.store import teacher_fingerprint

log = logging.getLogger(__name__)


def teacher_device_dtype(cfg: AuraConfig):
    """``(device, torch dtype)`` of a teacher worker: a GPU when one is visible (unless
    ``precompute.use_gpu=never``), and with ``precompute.dtype=auto`` bfloat16 there, float32 on CPU."""
    import torch

    device = "cuda" if torch.cuda.is_available() and cfg.precompute.use_gpu != "never" else "cpu"
    name = cfg.precompute.dtype
    if name == "auto":
        name = "bfloat16" if device == "cuda" else "float32"
    return device, getattr(torch, name)


@dataclass
class ShardResult:
    shard: str
    status: str  # computed | committed-already | claimed-elsewhere | failed
    samples: int = 0
    failures: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    node: str = ""
    error: str | None = None


@dataclass
class PrecomputeSummary:
    total_shards: int = 0
    skipped_committed: int = 0
    results: list[ShardResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    target_stats: str | None = None  # what happened to <store>/target_stats.npz

    @property
    def computed(self) -> int:
        return sum(r.status == "computed" for r in self.results)

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    @property
    def audio_seconds(self) -> float:
        return sum(r.audio_seconds for r in self.results if r.status == "computed")

    def describe(self) -> str:
        lines = [
            f"precompute: {self.total_shards} shards in the manifest, {self.skipped_committed} already in the store, "
            f"computed {self.computed} now ({self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s)"
        ]
        if self.target_stats:
            lines.append(f"  target statistics: {self.target_stats}")
        busy = [r.shard for r in self.results if r.status == "claimed-elsewhere"]
        if busy:
            lines.append(f"  {len(busy)} shard(s) held by another job, not computed here: {', '.join(busy[:5])}")
        for r in self.results:
            if r.status == "failed":
                lines.append(f"  FAILED {r.shard}: {r.error}")
            elif r.failures:
                lines.append(f"  {r.shard}: {r.failures} sample(s) failed in the teacher (recorded in the store)")
        return "\n".join(lines)


class TeacherWorker:
    """Holds one teacher; computes and commits whole shard groups. Runs as a Ray actor."""

    def __init__(self, cfg_json: str, fingerprint_json: str, owner: str):
        import torch

        from pipeline.config import AuraConfig
        from pipeline.models.teacher import WhisperTeacher, window_options

        self.cfg = AuraConfig.model_validate_json(cfg_json)
        torch.set_num_threads(self.cfg.precompute.threads_per_worker)
        fingerprint = StoreFingerprint.model_validate_json(fingerprint_json)
        device, dtype = teacher_device_dtype(self.cfg)
        self.teacher = WhisperTeacher.from_spec(
            self.cfg.models.teacher, self.cfg.models.cache_dir, layers=fingerprint.layers,
            pooling=fingerprint.pooling, device=device, dtype=dtype,
            trust_remote_code=self.cfg.models.trust_remote_code, **window_options(fingerprint),
        )
        self.store = FeatureStore.open(self.cfg.paths.store, fingerprint, mode="a")
        self.shards = ShardSet(self.cfg.paths.shards)
        self.owner = owner
        import ray

        # two Ray nodes can share a host: name the node too (outside Ray, e.g. a plain loop, asking
        # for the node id would start a whole local Ray cluster)
        self.node = socket.gethostname()
        if ray.is_initialized():
            self.node += f"/{ray.get_runtime_context().get_node_id()[:12]}"

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def process(self, shard: str) -> ShardResult:
        start = time.perf_counter()
        try:
            return self._process(shard, start)
        except OSError as exc:  # a full disk or a lost mount: this shard fails clearly, the job goes on
            return ShardResult(shard, "failed", node=self.node,
                               error=f"store write failed ({self.cfg.paths.store}): {exc}")

    def _process(self, shard: str, start: float) -> ShardResult:
        lease = self.store.try_claim(shard, self.owner)
        if lease is None:
            return ShardResult(shard, "claimed-elsewhere", node=self.node)
        try:
            if shard in self.store.committed_shards():
                return ShardResult(shard, "committed-already", node=self.node)
            try:
                samples = list(self.shards.iter_shard(shard))
            except (ShardFormatError, OSError, ValueError) as exc:
                return ShardResult(shard, "failed", node=self.node, error=f"cannot read shard: {exc}")
            with lease.keep_alive():  # encoding a shard may outlast the lease ttl
                states, failures = self._encode_all(samples)
            with self.store.shard_writer(shard, lease=lease) as writer:
                for sample in samples:  # shard order, whatever the batching order was
                    if sample.key in failures:
                        writer.add_failure(sample.key, failures[sample.key])
                    else:
                        writer.add(sample.key, states[sample.key], split=sample.meta.get("split"))
            audio_s = sum(len(s.audio) for s in samples if s.key not in failures) / WHISPER_SAMPLE_RATE  # encoded audio only
            return ShardResult(shard, "computed", len(samples) - len(failures), len(failures), audio_s,
                               time.perf_counter() - start, self.node)
        finally:
            lease.release()

    def _encode_all(self, samples) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        from pipeline.models.teacher import TeacherInputError

        states: dict[str, np.ndarray] = {}
        failures: dict[str, str] = {}
        by_length = sorted(samples, key=lambda s: len(s.audio))
        size = self.cfg.precompute.batch_size
        for i in range(0, len(by_length), size):
            batch = by_length[i : i + size]
            try:
                outputs = self.teacher.encode([s.audio for s in batch])
            except TeacherInputError:
                # One bad utterance must not sink its batch: redo one by one and record the culprit.
                outputs = []
                for s in batch:
                    try:
                        outputs.append(self.teacher.encode([s.audio])[0])
                    except TeacherInputError as exc:
                        failures[s.key] = str(exc)
                        outputs.append(None)
            for s, out in zip(batch, outputs):
                if out is not None:
                    states[s.key] = out
        return states, failures


def _write_target_stats(store: FeatureStore) -> str:
    """Refresh the store's per-layer target statistics (training split) after a run; a store that
    cannot have them (no training frames yet, groups from before statistics) is reported, not fatal."""
    try:
        stats = store.write_target_stats()
    except ValueError as exc:
        log.warning("target statistics not written: %s", exc)
        return f"not written: {exc}"
    return f"written over {stats.frames} training frames ({stats.samples} samples, {stats.shards} shards)"


def run_precompute(cfg: AuraConfig, progress: bool = True) -> PrecomputeSummary:
    """Compute the teacher states of every shard not yet committed to the store."""
    import ray
    from ray.util import ActorPool
    from tqdm import tqdm

    start = time.perf_counter()
    shard_names = ShardSet(cfg.paths.shards).shard_names()
    fingerprint = teacher_fingerprint(cfg)
    store = FeatureStore.open(cfg.paths.store, fingerprint, mode="a")
    committed = store.committed_shards()
    pending = [s for s in shard_names if s not in committed]
    summary = PrecomputeSummary(total_shards=len(shard_names), skipped_committed=len(shard_names) - len(pending))
    print(f"precompute: {len(shard_names)} shards, {summary.skipped_committed} committed, {len(pending)} to compute")
    if pending:
        init_ray(cfg.precompute.address)
        gpu = cluster_has_gpu(cfg.precompute.use_gpu, "precompute.use_gpu")
        # A dead actor is restarted (teacher reloaded) and its in-flight shard retried; the dead one's
        # lease is stale (pid gone, or no heartbeat) and its half-written group is never committed.
        actor_cls = ray.remote(num_cpus=cfg.precompute.threads_per_worker, num_gpus=1 if gpu else 0,
                               max_restarts=cfg.precompute.max_restarts,
                               max_task_retries=cfg.precompute.max_restarts)(TeacherWorker)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        actors = [
            actor_cls.remote(cfg.model_dump_json(), fingerprint.model_dump_json(), owner)
            for _ in range(min(cfg.precompute.num_workers, len(pending)))
        ]
        pool = ActorPool(actors)
        results = pool.map_unordered(lambda actor, shard: actor.process.remote(shard), pending)
        for result in tqdm(results, total=len(pending), desc="precompute: shards", disable=not progress):
            summary.results.append(result)
        for actor in actors:
            ray.kill(actor)
    summary.target_stats = _write_target_stats(store)
    summary.results.sort(key=lambda r: r.shard)
    summary.wall_seconds = time.perf_counter() - start
    return summary
