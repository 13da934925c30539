"""The model actor of a batch-inference job: it answers whole parts of the plan and writes each part's file.

One :class:`PartAnswerer` holds one system (the encoder-free student, or a baseline for comparison)
for its lifetime. Given a part it reads the part's audio (files, or samples of ingested shards), decodes
the requests in batches of neighbours in length, and writes the part's rows at once. A request that
cannot be read, or whose generation fails, gets its ``error`` and the others of the part go on; a
batch that fails as a whole (e.g. out of memory) is retried one request at a time.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.batch.plan import BatchOutput
from pipeline.requests import answer_robustly



def batches_by_length(durations: Sequence[float], batch_size: int) -> list[list[int]]:
    """Indices grouped ``batch_size`` at a time after sorting by duration (less padding per batch).

    >>> batches_by_length([3.0, 1.0, 2.0, 1.5], 2)
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(durations)), key=lambda i: (durations[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class PartAnswerer:
    """A Ray Data callable class: ``{"part": [ids]}`` -> the written parts' counts and timings."""

    def __init__(self, config_json: str, out_dir: str, system: str, max_new_tokens: int, batch_size: int,
                 threads: int, export: str | None = None, projector: str | None = None, device: str = "auto",
                 dtype: str = "auto"):
        import torch

        from pipeline.config import AuraConfig
        from pipeline.eval.systems import load_system
        from pipeline.cluster import quiet_transformers

        torch.set_num_threads(threads)
        self.cfg = AuraConfig.model_validate_json(config_json)
        self.out = BatchOutput(out_dir)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        with quiet_transformers():
            self.system = load_system(system, self.cfg, device=None if device == "auto" else device,
                                      dtype=None if dtype == "auto" else dtype, export_path=export,
                                      projector_path=projector)
        self.plan: dict[int, list[dict[str, Any]]] = {}
        for row in self.out.read_plan():
            self.plan.setdefault(row["part"], []).append(row)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        done: dict[str, list] = {"part": [], "rows": [], "failed": [], "audio_s": [], "compute_s": []}
        for part in batch["part"]:
            started = time.perf_counter()
            rows = self.answer_part(int(part))
            done["part"].append(int(part))
            done["rows"].append(len(rows))
            done["failed"].append(sum(r["error"] is not None for r in rows))
            done["audio_s"].append(float(sum(r["duration_s"] or 0.0 for r in rows if r["error"] is None)))
            done["compute_s"].append(time.perf_counter() - started)
        return done

    def answer_part(self, part: int) -> list[dict[str, Any]]:
        """Answer every request of ``part`` and write its file; returns the rows written."""
        requests = self.plan[part]
        results: list[dict[str, Any]] = [self._row(req) for req in requests]
        audio: dict[int, np.ndarray] = {}
        for i, (req, audio_or_error) in enumerate(zip(requests, self._load_audio(requests))):
            if isinstance(audio_or_error, str):
                results[i]["error"] = audio_or_error
            else:
                audio[i] = audio_or_error
                results[i]["duration_s"] = round(len(audio_or_error) / self.cfg.ingest.sample_rate, 3)
        readable = sorted(audio)
        for group in batches_by_length([results[i]["duration_s"] for i in readable], self.batch_size):
            members = [readable[g] for g in group]
            started = time.perf_counter()
            answers = answer_robustly(
                lambda a, ins: self.system.answer_batch(a, ins, max_new_tokens=self.max_new_tokens),
                [audio[i] for i in members], [requests[i]["instruction"] for i in members])
            seconds = time.perf_counter() - started
            for i, answer in zip(members, answers):
                if isinstance(answer, str):
                    results[i]["error"] = answer
                    continue
                results[i].update(answer=answer.text, num_audio_tokens=answer.num_audio_tokens,
                                  new_tokens=answer.new_tokens, finish_reason=answer.finish_reason,
                                  latency_s=round(seconds, 4), batch_size=len(members))
        self.out.write_part(part, results)
        return results

    def _row(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"key": request["key"], "source": request["source"], "instruction": request["instruction"],
                "answer": None, "error": request["error"], "duration_s": None, "num_audio_tokens": None,
                "new_tokens": None, "finish_reason": None, "latency_s": None, "batch_size": None,
                "part": request["part"], "position": request["position"], "worker": self.worker}

    def _load_audio(self, requests: list[dict[str, Any]]) -> list[np.ndarray | str]:
        """Each request's 16 kHz samples, or the reason it has none (the checks of ``aura ingest``)."""
        from pipeline.data.audio import AudioRejected
        from pipeline.data.shards import ShardFormatError, ShardSet
        from pipeline.requests import load_request_audio

        shard_audio: dict[tuple[str, str], dict[str, np.ndarray] | str] = {}
        loaded: list[np.ndarray | str] = []
        for req in requests:
            if req["error"] is not None:
                loaded.append(req["error"])
            elif req["shard"] is not None:
                where = (req["source"], req["shard"])
                if where not in shard_audio:
                    try:
                        shard_audio[where] = {s.key: s.audio for s in ShardSet(req["source"]).iter_shard(req["shard"])}
                    except (OSError, ShardFormatError, ValueError) as exc:
                        shard_audio[where] = f"shard {req['shard']} unreadable: {exc}"
                samples = shard_audio[where]
                if isinstance(samples, str):
                    loaded.append(samples)
                else:
                    loaded.append(samples.get(req["key"], f"not in shard {req['shard']}"))
            else:
                try:
                    loaded.append(load_request_audio(Path(req["source"]), self.cfg.ingest))
                except AudioRejected as exc:
                    loaded.append(exc.reason)
        return loaded
