#!/usr/bin/env bash
# Issue 5: compare_cpu_stage2_80 with the distillation term kept in stage 2 (train.distill_weight=1.0):
# same corpus, store and 300-step stage 1 (runs/compare), same 80-step budget, same bridge projector.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # repo root
mkdir -p runs/compare-dw1/checkpoints
ln -sfn "$PWD/runs/compare/checkpoints/distill" runs/compare-dw1/checkpoints/distill
ln -sfn "$PWD/runs/compare/checkpoints/bridge" runs/compare-dw1/checkpoints/bridge
SETS=(--set workdir=runs/compare-dw1 --set paths.corpus=runs/compare/corpus --set paths.shards=runs/compare/shards
      --set paths.store=runs/compare/store.zarr --set corpus.num_utterances=240 --set ingest.samples_per_shard=24
      --set train.max_steps=300 --set train.tasks_max_steps=80 --set train.checkpoint_every=50
      --set train.eval_every=50 --set eval.max_samples=16 --set eval.max_new_tokens=32 --set train.distill_weight=1.0)
date
.venv/bin/aura train --stage tasks --config configs/demo.yaml "${SETS[@]}"
date
.venv/bin/aura eval --config configs/demo.yaml "${SETS[@]}" --train-bridge never
date
