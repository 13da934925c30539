#!/usr/bin/env bash
# Issue 5: compare_cpu_stage2_80_distill1 with three times the stage-2 budget (240 steps x 8 = 1,920
# examples, ~8 passes over the training split); the bridge projector retrained for the same 240 x 8.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # repo root
mkdir -p runs/compare-dw1-240/checkpoints
ln -sfn "$PWD/runs/compare/checkpoints/distill" runs/compare-dw1-240/checkpoints/distill
SETS=(--set workdir=runs/compare-dw1-240 --set paths.corpus=runs/compare/corpus --set paths.shards=runs/compare/shards
      --set paths.store=runs/compare/store.zarr --set corpus.num_utterances=240 --set ingest.samples_per_shard=24
      --set train.max_steps=300 --set train.tasks_max_steps=240 --set train.checkpoint_every=80
      --set train.eval_every=80 --set eval.max_samples=16 --set eval.max_new_tokens=32 --set train.distill_weight=1.0)
date
.venv/bin/aura train --stage tasks --config configs/demo.yaml "${SETS[@]}"
date
.venv/bin/aura eval --config configs/demo.yaml "${SETS[@]}" --train-bridge always
date
