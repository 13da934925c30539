#!/usr/bin/env bash
# Continue the released student's stage 2 where its run's checkpoints are gone (a new sitting on a new machine):
# rebuild the data (deterministic: the same corpus, shards and store as the release's), then stage 2 again from
# the released trained parts (train.tasks_init_from), the same recipe as its first stage 2 (configs/student.yaml:
# lr 1e-3, warm-up 30, LM loss + 0.3 x distillation), and evaluate it like the release.
# Every step resumes or skips finished work when run again. As run on 2026-12-02 the corpus had configs/speech.yaml's
# 22,000 rows (20,900 train): a prefix of the 24,000 rows (grow.sh) the release's first stage 2 saw.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/student_continued
RELEASED=$(bash benchmarks/release_at.sh 026787a)  # the release of 2026-12-02 it started from
STEPS=${STEPS:-400}
$A corpus --config configs/speech.yaml --set corpus.num_utterances=22000 # ~15-20 min: 22,000 utterances
$A ingest runs/speech/corpus/manifest.jsonl --config configs/speech.yaml   # ~2 min
$A precompute --config configs/speech.yaml                                 # ~11 min: the teacher, once
$A train --config configs/student.yaml --stage tasks --resume --set train.tasks_init_from=$RELEASED \
  --set train.tasks_max_steps=$STEPS --set train.checkpoint_every=80 --set train.eval_samples=120
# The second continuation (resumes from step 400; the schedule stretches to the new end):
#   $A train --config configs/student.yaml --stage tasks --resume --set train.tasks_init_from=$RELEASED \
#     --set train.tasks_max_steps=800 --set train.checkpoint_every=80 --set train.eval_samples=120
cp runs/speech/checkpoints/tasks/eval.csv $OUT/eval_tasks.csv
cp runs/speech/checkpoints/tasks/metrics.csv $OUT/metrics_tasks.csv
$A eval --config configs/student.yaml --systems aura --max-samples 400 --train-bridge never --no-cosine \
  --export runs/speech/checkpoints/tasks/export/student.safetensors --out $OUT/eval
