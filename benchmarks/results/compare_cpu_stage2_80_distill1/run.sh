#!/usr/bin/env bash
# Issue 5: stage 2 with the distillation term kept (train.distill_weight=1.0) on the 240-utterance demo
# corpus, from the 300-step stage 1 of compare_cpu_stage2_80 (runs/compare: corpus, shards, store, stage 1),
# then `aura eval` of all four systems. TASKS_STEPS (default 80) is the stage-2 budget; the bridge
# projector gets the same budget: at 80 steps the one compare_cpu_stage2_80 trained is linked in, at
# any other budget it is trained (80 x 8 takes ~6 min on 2 cores). compare_cpu_stage2_160_distill1 = 160.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # repo root
TASKS_STEPS=${TASKS_STEPS:-80}
EVERY=${EVERY:-50}  # checkpoint and held-out evaluation interval (160 steps: 80)
WORKDIR=runs/compare-dw1$([ "$TASKS_STEPS" = 80 ] || echo "-$TASKS_STEPS")
mkdir -p "$WORKDIR/checkpoints"
ln -sfn "$PWD/runs/compare/checkpoints/distill" "$WORKDIR/checkpoints/distill"
if [ "$TASKS_STEPS" = 80 ]; then ln -sfn "$PWD/runs/compare/checkpoints/bridge" "$WORKDIR/checkpoints/bridge"; fi
SETS=(--set workdir="$WORKDIR" --set paths.corpus=runs/compare/corpus --set paths.shards=runs/compare/shards
      --set paths.store=runs/compare/store.zarr --set corpus.num_utterances=240 --set ingest.samples_per_shard=24
      --set train.max_steps=300 --set train.tasks_max_steps="$TASKS_STEPS" --set train.checkpoint_every="$EVERY"
      --set train.eval_every="$EVERY" --set eval.max_samples=16 --set eval.max_new_tokens=32
      --set train.distill_weight=1.0)
date
.venv/bin/aura train --stage tasks --config configs/demo.yaml "${SETS[@]}"
date
.venv/bin/aura eval --config configs/demo.yaml "${SETS[@]}" --train-bridge auto
date
