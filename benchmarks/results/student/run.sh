#!/usr/bin/env bash
# Reproduce the released student (pipeline/released/aura-smollm2-135m-whisper-tiny-en) on 2 CPU cores.
# Every step resumes or skips finished work when run again; stage 1 and 2 continue from their last
# checkpoint (raise train.max_steps / train.tasks_max_steps to train on).
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/student
$A corpus --config configs/speech.yaml --set corpus.num_utterances=22000 # ~19 min: 22,000 utterances
$A ingest runs/speech/corpus/manifest.jsonl --config configs/speech.yaml   # ~2 min
$A precompute --config configs/speech.yaml                                 # ~11 min: the teacher, once
$A train --config configs/student.yaml --stage distill --resume            # stage 1
$A probe --config configs/student.yaml --split dev --max-samples 60 --out $OUT/probe_stage1_dev.json
$A train --config configs/student.yaml --stage tasks --resume --set train.eval_samples=120  # stage 2
$A curve --config configs/student.yaml --stage tasks --max-samples 100 --steps 0,200,400 --out $OUT
$A eval --config configs/student.yaml --systems aura,cascade --max-samples 400 --train-bridge never --no-cosine \
  --out $OUT/eval
