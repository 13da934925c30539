"""The paper-scale GPU check (benchmarks/gpu_check.py) must not rot: run it at toy sizes on CPU.

The toy run goes through ``benchmarks/gpu_check.sh`` (environment, dependency check, log) and the same
code as the paper-scale run, only the sizes differ; it must produce every row with no error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import gpu_check
from tests.conftest import REPO

VARIANTS = ["llm_alone", "encoder_free", "bridge", "cascade", "cached_targets", "live_teacher"]


def test_toy_run_writes_every_row(tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--toy", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    report = json.loads((out / "gpu_check.json").read_text())
    assert report["toy"] is True and report["skipped"] == []
    assert report["environment"]["device"] == "cpu"
    sizes = gpu_check.Sizes(**{**gpu_check.asdict(gpu_check.Sizes()), **gpu_check.TOY})
    results = {r["variant"]: r for r in report["results"]}
    assert list(results) == VARIANTS
    for name, r in results.items():
        assert r["error"] is None, (name, r["error"])
        assert r["median_s"] > 0 and len(r["times_s"]) == (sizes.reps if r["kind"] == "inference" else sizes.train_steps)
        assert r["peak_mem_gb"] > 0 and r["mem_kind"] == "cpu_peak_rss", r
    tokens_per_utterance = round(sizes.utterance_s * 50)  # 50 teacher frames (= audio tokens) per second
    for name in ("llm_alone", "encoder_free", "bridge", "cascade"):
        assert results[name]["new_tokens"] == sizes.gen_tokens, results[name]  # stop tokens are ignored
    assert results["encoder_free"]["audio_tokens"] == tokens_per_utterance
    assert results["llm_alone"]["prefix_tokens"] == results["encoder_free"]["prefix_tokens"]  # the same LLM work
    assert results["bridge"]["audio_tokens"] == -(-tokens_per_utterance // sizes.bridge_stack)
    assert results["cached_targets"]["audio_tokens"] == results["live_teacher"]["audio_tokens"] == tokens_per_utterance
    assert set(report["ratios"]) == {f"{kind}_{other}_over_{base}" for kind in ("time", "mem")
                                     for base, other in (("llm_alone", "encoder_free"), ("encoder_free", "bridge"), ("encoder_free", "cascade"),
                                                         ("cached_targets", "live_teacher"))}

    md = (out / "gpu_check.md").read_text()
    for label in gpu_check.LABELS.values():
        assert label in md
    assert "TOY sizes" in md and "| time_bridge_over_encoder_free |" in md
    assert "[gpu_check] live_teacher:" in (out / "gpu_check.log").read_text()


def test_paper_sizes_are_the_default_and_arguments_override():
    _, paper = gpu_check.parse_args([])
    assert paper == gpu_check.Sizes()  # no argument: the paper's sizes, as the dataclass documents them
    _, toy_only = gpu_check.parse_args(["--toy"])
    assert toy_only == gpu_check.Sizes(**gpu_check.TOY)
    for name, value in gpu_check.TOY.items():  # the toy is smaller wherever it differs
        if isinstance(value, (int, float)) and getattr(paper, name) != value:
            assert value < getattr(paper, name), name
    args, toy = gpu_check.parse_args(["--toy", "--llm-layers", "6", "--out", "/tmp/x"])
    assert args.toy and args.out == Path("/tmp/x")
    assert toy.llm_layers == 6 and toy.llm_hidden == gpu_check.TOY["llm_hidden"]


def test_markdown_reports_errors_and_skipped_variants():
    failed = gpu_check.Result("bridge", gpu_check.LABELS["bridge"], "inference", error="OutOfMemoryError: CUDA")
    ok = gpu_check.Result("encoder_free", gpu_check.LABELS["encoder_free"], "inference", peak_mem_gb=15.5,
                          median_s=0.4, times_s=[0.4], notes="n")
    report = {"toy": False, "sizes": gpu_check.asdict(gpu_check.Sizes()), "wall_s": 1.0, "skipped": ["live_teacher"],
              "environment": {"device": "cuda", "device_name": "H100", "dtype": "bfloat16", "torch": "x",
                              "transformers": "y"},
              "results": [gpu_check.asdict(ok), gpu_check.asdict(failed)],
              "ratios": gpu_check.ratios([ok, failed])}
    md = gpu_check.markdown(report)
    assert "error: OutOfMemoryError" in md and "skipped (time budget): live_teacher" in md
    assert "GPU peak (max_memory_allocated)" in md and report["ratios"] == {}
