#!/usr/bin/env bash
# The CTC trial: the released student's recipe (configs/student.yaml) with the auxiliary CTC head in both
# stages, at a smaller budget, on the same data (configs/speech.yaml builds it; see ../student/run.sh).
# Every step resumes: run it again to continue from the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/student_ctc
CTC=(--config configs/student.yaml --set paths.checkpoints=runs/speech/checkpoints-ctc
     --set student.ctc_weight=0.5 --set train.tasks_ctc_weight=0.3)
$A train "${CTC[@]}" --stage distill --resume --set train.max_steps=700 --set train.eval_every=175 \
  --set train.eval_samples=120
$A train "${CTC[@]}" --stage tasks --resume --set train.tasks_max_steps=200 --set train.eval_samples=120
$A eval "${CTC[@]}" --systems aura --max-samples 200 --train-bridge never --no-cosine --out $OUT/eval
