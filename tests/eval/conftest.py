"""A tiny evaluation workdir built in-process (no Ray, no espeak): synthetic speech-like audio in
webdataset shards, random-Whisper teacher states in a feature store, and an untrained student
export — enough for the evaluation harness to run every system with the random tiny models."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.data.audio import speechlike




TEXTS = ["the quick brown fox", "please call stella", "the capital of france is paris",
         "she sells fresh bread", "what is the capital of france", "the meeting will start at ten"]
QA = [("what is the capital of france", "paris"), ("what color is the sky", "blue")]


def _write_workdir(workdir: Path, n_train: int = 8, n_heldout: int = 4) -> list[str]:
    from pipeline.config import load_config
    from pipeline.data.audio import to_flac_bytes
    from pipeline.data.shards import MANIFEST_SCHEMA, ShardSet
    from pipeline.models.teacher import WhisperTeacher, window_options
    from pipeline.store import open_store_for

    overrides = [f"workdir={workdir}", "train.max_steps=3", "train.batch_size=2", "train.num_workers=1",
                 "eval.max_new_tokens=6"]
    cfg = load_config("configs/tiny.yaml", overrides)
    shards = ShardSet(cfg.paths.shards)
    rows, samples = [], []
    for i in range(n_train + n_heldout):
        split = "train" if i < n_train else "heldout"
        task = "transcribe" if i % 2 == 0 else "spoken_qa"
        key = f"utt-{i:03d}"
        audio = speechlike(0.5 + 0.1 * (i % 4), seed=i)
        if task == "transcribe":
            text, question, answer = TEXTS[i % len(TEXTS)], None, None
        else:
            question, answer = QA[i % len(QA)]
            text = question
        meta = {"key": key, "text": text, "task": task, "question": question, "answer": answer, "split": split}
        samples.append((key, to_flac_bytes(audio, 16000), meta))
        rows.append({"key": key, "shard": "", "index": 0, "source": f"synthetic/{key}.wav", "sha256": "0" * 64,
                     "duration_s": len(audio) / 16000, "num_samples": len(audio), "sample_rate": 16000,
                     "source_sample_rate": 16000, "source_channels": 1, "text": text, "task": task,
                     "question": question, "answer": answer, "split": split, "speaker": f"spk{i % 3}", "meta": "{}"})
    per_shard = 4
    for s in range(0, len(samples), per_shard):
        name = f"shard-{s // per_shard:06d}"
        shards.write_shard(name, samples[s : s + per_shard])
        for j, row in enumerate(rows[s : s + per_shard]):
            row["shard"], row["index"] = name, j
    shards.write_manifest(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA))

    store = open_store_for(cfg, mode="a")
    fp = store.fingerprint
    teacher = WhisperTeacher.from_spec(cfg.models.teacher, cfg.models.cache_dir, layers=fp.layers, pooling=fp.pooling,
                                      **window_options(fp))
    for name in shards.shard_names():
        batch = list(shards.iter_shard(name))
        states = teacher.encode([s.audio for s in batch])
        with store.shard_writer(name) as writer:
            for sample, x in zip(batch, states):
                writer.add(sample.key, x)

    # an untrained student export (same cost as a trained one) and fake training curves
    from pipeline.models.sources import load_llm
    from pipeline.models.student import AuraStudent

    llm, _ = load_llm(cfg.models.llm, cfg.models.cache_dir)
    student = AuraStudent.from_llm(llm, cfg.student, teacher_layers=fp.layers, teacher_width=fp.width,
                                   n_mels=fp.mel.n_mels, pooling=fp.pooling)
    distill = Path(cfg.paths.checkpoints) / "distill"
    student.save_trainable(distill / "export" / "student.safetensors")
    with open(distill / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "epoch", "loss", "cos_L2", "cos_L4", "lr"])
        for step in range(1, 6):
            w.writerow([step, 0, 1.0 / step, 0.1 * step, 0.08 * step, "0.001"])
    with open(distill / "eval.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "cos_L2", "cos_L4", "cos_mean"])
        for step in (0, 5):
            w.writerow([step, 0.1 + 0.1 * step, 0.05 * step, 0.07 * step])
    return overrides


@pytest.fixture(scope="session")
def eval_workdir(tmp_path_factory) -> tuple[Path, list[str]]:
    """``(workdir, config overrides)`` of a finished tiny run (shards, store, untrained export)."""
    workdir = tmp_path_factory.mktemp("eval-run")
    return workdir, _write_workdir(workdir)


@pytest.fixture
def eval_cfg(eval_workdir, tmp_path):
    """A config on the shared workdir whose reports and bridge go to a fresh folder per test."""
    from pipeline.config import load_config

    workdir, overrides = eval_workdir
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(workdir / "checkpoints", checkpoints)
    return load_config("configs/tiny.yaml", overrides + [f"paths.checkpoints={checkpoints}",
                                                          f"paths.reports={tmp_path / 'reports'}"])
