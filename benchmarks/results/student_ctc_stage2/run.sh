#!/usr/bin/env bash
# Both read-outs at once (issue 13): a short stage 2 from the released (CTC-stage) student, LM loss on the answers
# + 0.3 x distillation + 0.3 x CTC (train.tasks_ctc_weight), 150 steps x 16 = 2,400 examples, lr 1e-3; then both
# read-outs on dev and the CTC read-out on the held-out split. Data: configs/speech.yaml's (../student_continued/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/student_ctc_stage2
RELEASED=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
RUN=runs/speech/checkpoints_ctc2
$A train --config configs/student.yaml --stage tasks --resume --set train.tasks_init_from=$RELEASED \
  --set student.ctc_weight=0.5 --set train.tasks_ctc_weight=0.3 --set paths.checkpoints=$RUN \
  --set train.tasks_max_steps=${STEPS:-150} --set train.checkpoint_every=50 --set train.eval_samples=120 --set train.eval_every=150
cp $RUN/tasks/eval.csv $OUT/tasks_eval.csv
cp $RUN/tasks/metrics.csv $OUT/tasks_metrics.csv
.venv/bin/python -m benchmarks.readout_dev --config configs/student.yaml --export $RUN/tasks/export/student.safetensors \
  --samples 60 --out $OUT/readout_dev.json
$A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 --train-bridge never --no-cosine \
  --export $RUN/tasks/export/student.safetensors --out $OUT/eval
