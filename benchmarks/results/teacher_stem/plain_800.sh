#!/usr/bin/env bash
# The plain arm of run.sh continued to 800 steps (schedule stretched as continue.sh's), for equal-budget pairs with
# the stem continued to 800 (continue.sh) and the frozen-patch stem (frozen_patch.sh). Resumes when run again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_stem
RUN=runs/speech/checkpoints_plain22k
STEPS=800 PLAIN_RUN=$RUN bash benchmarks/stage1_arm.sh $OUT plain $RUN
for SPLIT in heldout dev; do
  [ -f $OUT/paired_${SPLIT}_800.json ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml \
    --split $SPLIT --samples 200 --export plain_800=$RUN/distill/exports/step-000800.safetensors \
    --export stem_800=runs/speech/checkpoints_teacher_stem/distill/exports/step-000800.safetensors \
    --out $OUT/paired_${SPLIT}_800.json
done
