#!/usr/bin/env bash
# The released student's recipe after the shifted arm's 1,200 stage-1 steps (./run.sh): the short stage 2 with the
# CTC term of ../student_ctc_stage2 (LM loss + 0.3 x distillation + 0.3 x CTC, 150 steps x 16, lr 1e-3), the
# speaker shift kept at 0.5; then both read-outs on dev, the CTC read-out on the held-out split, and the paired
# comparison with the released parts and the own-voices arm.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/speaker_shift
START=runs/speech/checkpoints_shift_shifted/distill/exports/step-001200.safetensors
RUN=runs/speech/checkpoints_shift_stage2
$A train --config configs/student.yaml --stage tasks --resume --set train.tasks_init_from=$START \
  --set student.ctc_weight=0.5 --set train.tasks_ctc_weight=0.3 --set paths.checkpoints=$RUN \
  --set train.speaker_shift=0.5 --set train.tasks_max_steps=${STEPS:-150} --set train.checkpoint_every=50 \
  --set train.eval_samples=120 --set train.eval_every=150
cp $RUN/tasks/eval.csv $OUT/stage2_eval.csv
cp $RUN/tasks/metrics.csv $OUT/stage2_metrics.csv
[ -f $OUT/eval_stage2/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $RUN/tasks/export/student.safetensors --out $OUT/eval_stage2
.venv/bin/python -m benchmarks.readout_dev --config configs/student.yaml --export $RUN/tasks/export/student.safetensors \
  --samples 60 --out $OUT/readout_dev_stage2.json
