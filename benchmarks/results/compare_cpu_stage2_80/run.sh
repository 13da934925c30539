#!/usr/bin/env bash
# Issue 5: a longer stage-2 budget on the 240-utterance demo corpus, stage 1 = the 300-step run.
set -euo pipefail
cd "$(dirname "$0")/../../.."  # repo root; runs/compare: a copy of the 240-utterance demo corpus, shards, store + a 300-step stage 1
SETS=(--set workdir=runs/compare --set corpus.num_utterances=240 --set ingest.samples_per_shard=24
      --set train.max_steps=300 --set train.tasks_max_steps=80 --set train.checkpoint_every=50
      --set train.eval_every=50 --set eval.max_samples=16 --set eval.max_new_tokens=32)
date
.venv/bin/aura train --stage tasks --config configs/demo.yaml "${SETS[@]}" --resume
date
.venv/bin/aura eval --config configs/demo.yaml "${SETS[@]}"
date
