#!/usr/bin/env bash
# Issue 5: quality and latency per audio token rate (pooling 1, 2, 4) on the 240-utterance demo corpus,
# each point trained with the budget of compare_cpu_stage2_80 (stage 1 300 steps, stage 2 80 steps).
# Expects runs/compare (corpus, shards, pooling-1 store) from that comparison; its pooling-1 checkpoints
# are linked in so --skip-done reuses them (DISTILL_WEIGHT must match the stage 2 linked as p1/tasks).
set -euo pipefail
cd "$(dirname "$0")/../../.."  # repo root
DISTILL_WEIGHT=${DISTILL_WEIGHT:-1.0}
P1_TASKS=${P1_TASKS:-runs/compare-dw1/checkpoints/tasks}
mkdir -p runs/compare-tr/token_rate/p1/checkpoints
ln -sfn "$PWD/runs/compare/checkpoints/distill" runs/compare-tr/token_rate/p1/checkpoints/distill
ln -sfn "$PWD/$P1_TASKS" runs/compare-tr/token_rate/p1/checkpoints/tasks
date
.venv/bin/python -m jobs.token_rate --config configs/demo.yaml --poolings 1,2,4 --skip-done \
  --out benchmarks/results/token_rate_cpu \
  --set workdir=runs/compare-tr --set paths.corpus=runs/compare/corpus --set paths.shards=runs/compare/shards \
  --set paths.store=runs/compare/store.zarr --set corpus.num_utterances=240 --set ingest.samples_per_shard=24 \
  --set train.max_steps=300 --set train.tasks_max_steps=80 --set train.checkpoint_every=50 \
  --set train.eval_every=50 --set eval.max_samples=16 --set eval.max_new_tokens=32 \
  --set train.distill_weight="$DISTILL_WEIGHT"
date
