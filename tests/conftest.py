"""Shared fixtures: small real audio written to disk, and a tmp working directory."""

from __future__ import annotations

import os

# DeepSpeed / torch on CPU: one thread per worker is much faster on this 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One model cache for the session and the subprocesses it starts (bundled conversions are reused).
os.environ.setdefault("AURA_CACHE_DIR", os.path.expanduser("~/.cache/aura"))

from pathlib import Path

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from pipeline.data.audio import speechlike

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    """The cache that bundled/random model specs resolve into (``$AURA_CACHE_DIR``)."""
    return Path(os.environ["AURA_CACHE_DIR"]).expanduser()


# A child script that sets torch.distributed's environment when imported: --doctest-modules must not
# import it into the test process (every later `aura train` would think it runs under torchrun).
collect_ignore = ["train/checkpoint_child.py"]


def run_aura(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m pipeline.cli ARGS`` in a fresh process (as a user or a Ray job would)."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def build_tiny_workdir(workdir: Path, num_utterances: int = 24, extra: tuple[str, ...] = ()) -> list[str]:
    """Corpus -> shards -> store with the tiny random models; returns the config overrides to reuse it."""
    overrides = ["--config", "configs/tiny.yaml", "--set", f"workdir={workdir}", *extra]
    for step in (["corpus", "--set", f"corpus.num_utterances={num_utterances}"],
                 ["ingest", str(workdir / "corpus" / "manifest.jsonl")],
                 ["precompute"]):
        done = run_aura(step[0], *overrides, *step[1:])
        assert done.returncode == 0, f"aura {step[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return overrides


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory) -> tuple[Path, list[str]]:
    """A finished corpus/shards/store built once per session with configs/tiny.yaml."""
    workdir = tmp_path_factory.mktemp("tiny-run")
    return workdir, build_tiny_workdir(workdir)


@pytest.fixture
def write_wav():
    """Write a speech-like wav (and optional transcript sidecar); returns the path."""

    def _write(path: Path, seconds: float = 1.0, rate: int = 16000, text: str | None = "hello world",
               seed: int = 0, channels: int = 1, subtype: str = "PCM_16") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = speechlike(seconds, rate, seed)
        if channels > 1:
            audio = np.stack([audio] * channels, axis=1)
        sf.write(path, audio, rate, subtype=subtype)
        if text is not None:
            path.with_suffix(".txt").write_text(text)
        return path

    return _write


# ---------------------------------------------------------------------------------------------- fault suite
# Tests marked ``@pytest.mark.faults(area, fault)`` are the fault-injection suite (``pytest -m faults``).
# Each one is a trial; the end of the run prints how many of each (area, fault) survived, and
# ``AURA_FAULT_REPORT=path.md`` writes that table as markdown (the README's Reliability table).
FAULT_TRIALS: list[tuple[str, str, str]] = []  # (area, fault, outcome)


def fault_seeds(in_ci: int) -> list[int]:
    """Seeds of a randomized fault test: ``in_ci`` by default, ``$AURA_FAULT_SEEDS`` of them on demand."""
    return list(range(int(os.environ.get("AURA_FAULT_SEEDS", in_ci))))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("faults")
    if marker is None or len(marker.args) < 2:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        FAULT_TRIALS.append((marker.args[0], marker.args[1], report.outcome))


def fault_table() -> str:
    rows: dict[tuple[str, str], list[int]] = {}
    for area, fault, outcome in FAULT_TRIALS:
        counts = rows.setdefault((area, fault), [0, 0, 0])
        counts[0] += outcome != "skipped"
        counts[1] += outcome == "passed"
        counts[2] += outcome == "skipped"
    lines = ["| area | fault injected / bad input | trials | survived (handled) |", "|---|---|---|---|"]
    for (area, fault), (trials, passed, skipped) in sorted(rows.items()):
        lines.append(f"| {area} | {fault} | {trials} | {passed}" + (f" ({skipped} skipped)" if skipped else "") + " |")
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter):
    if not FAULT_TRIALS:
        return
    terminalreporter.write_sep("=", "fault-injection trials")
    terminalreporter.write(fault_table())
    if os.environ.get("AURA_FAULT_REPORT"):
        Path(os.environ["AURA_FAULT_REPORT"]).write_text(fault_table())
