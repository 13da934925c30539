"""``aura demo``: the whole pipeline on the embedded default, resumable step by step.

Local Ray, a zarr store on local disk, the bundled real Whisper tiny.en (teacher) and SmolLM2-135M
(student). Steps, each skipped when already done and resumed when half done:

1. synthesize the speech corpus (espeak-ng);
2. ingest 90 % of it into shards and precompute the teacher states;
3. grow the dataset: ingest the rest (new shards only) and precompute again (only the new shards);
4. stage 1 (distillation) on 2 Ray Train workers under ZeRO-2;
5. stage 2 (speech tasks);
6. evaluation report with plots;
7. an encoder-free answer to one held-out utterance, next to its reference.

Usage::

    aura demo --config configs/demo.yaml          # re-run: finished steps are skipped
    aura demo --config configs/demo.yaml --fresh  # start over
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from pipeline.config import AuraConfig

GROWTH_FRACTION = 0.9


def _banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _corpus(cfg: AuraConfig) -> Path:
    from pipeline.data.corpus import generate_corpus

    manifest = Path(cfg.paths.corpus) / "manifest.jsonl"
    if manifest.exists():
        print(f"corpus: {manifest} exists, skipped")
        return manifest
    return generate_corpus(Path(cfg.paths.corpus), cfg.corpus.num_utterances, seed=cfg.corpus.seed,
                           workers=cfg.corpus.workers)


def _first_part(manifest: Path) -> Path:
    """The first 90 % of the corpus rows: the dataset before it grows."""
    lines = manifest.read_text().splitlines()
    part = manifest.with_name("manifest.part1.jsonl")
    part.write_text("\n".join(lines[: int(len(lines) * GROWTH_FRACTION)]) + "\n")
    return part


def _ingest_and_precompute(cfg: AuraConfig, source: Path, label: str) -> None:
    from pipeline.data.ingest import ingest
    from pipeline.precompute import run_precompute

    summary = ingest(source, cfg.paths.shards, cfg.ingest)
    print(f"[{label}] " + summary.describe())
    result = run_precompute(cfg)
    print(f"[{label}] " + result.describe())
    if not result.ok:
        raise RuntimeError("precompute failed; see above")


def run_demo(cfg: AuraConfig, fresh: bool = False) -> dict:
    """Run (or finish) the demo; returns where the outputs are."""
    from pipeline.train.launch import launch, run_dir_for

    started = time.perf_counter()
    workdir = Path(cfg.workdir)
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    _banner("1/7 corpus")
    manifest = _corpus(cfg)
    _banner("2/7 ingest + precompute (initial dataset)")
    _ingest_and_precompute(cfg, _first_part(manifest), "initial")
    _banner("3/7 the dataset grows: ingest new audio, precompute only the new shards")
    _ingest_and_precompute(cfg, manifest, "growth")

    for number, stage in ((4, "distill"), (5, "tasks")):
        _banner(f"{number}/7 train stage {stage} ({cfg.train.num_workers} Ray Train workers, ZeRO-{cfg.train.zero_stage})")
        if (run_dir_for(cfg, stage) / "export" / "student.safetensors").exists():
            print(f"{stage}: finished earlier, skipped")
            continue
        launch(cfg, stage=stage, resume=True)

    _banner("6/7 evaluation report")
    from pipeline.eval.run import run_eval

    report = run_eval(cfg)

    _banner("7/7 encoder-free answer to a held-out utterance (no Whisper loaded)")
    answer = _one_answer(cfg)
    elapsed = time.perf_counter() - started
    outputs = {
        "report": str(Path(cfg.paths.reports) / "report.md"),
        "plots": str(Path(cfg.paths.reports)),
        "model": str(run_dir_for(cfg, "tasks") / "export"),
        "minutes": round(elapsed / 60, 1),
        **answer,
        **({"report_json": report} if isinstance(report, str) else {}),
    }
    print(f"\ndemo finished in {elapsed / 60:.1f} min")
    print(f"report:  {outputs['report']}")
    print(f"plots:   {outputs['plots']}")
    print(f"model:   {outputs['model']}  (export a merged model with `aura export --merged DIR`)")
    (workdir / "demo_outputs.json").write_text(json.dumps(outputs, indent=1))
    return outputs


def _one_answer(cfg: AuraConfig) -> dict:
    from pipeline.data.shards import ShardSet
    from pipeline.infer import EncoderFreeModel
    from pipeline.prompts import instruction_for, target_for

    shards = ShardSet(cfg.paths.shards)
    row = next(r for r in shards.manifest_rows() if r.get("split") == "heldout")
    audio = next(s.audio for s in shards.iter_shard(row["shard"]) if s.key == row["key"])
    model = EncoderFreeModel.from_config(cfg)
    result = model.generate([audio], [instruction_for(row["task"])], max_new_tokens=cfg.eval.max_new_tokens)[0]
    print(f"utterance: {row['key']} (held-out voice {row.get('speaker')}, task {row['task']})")
    print(f"reference: {target_for(row)}")
    print(f"answer:    {result.text}")
    return {"heldout_key": row["key"], "reference": target_for(row), "answer": result.text}
