#!/usr/bin/env bash
# Is the stem's 400-step gain on the new voice lost by 800 steps because the log-mel patch path, trained beside the
# stem, learns the six training voices? The "stem" arm of run.sh with the patch embedding kept as released
# (train.lr_scale_patch_embedding=0): the stem's projection (lr x10), the LoRA and the heads train. Paired with the
# plain arm of run.sh at the same budget; STEPS=800 continues both comparisons (plain continued by plain_800.sh).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:-benchmarks/results/teacher_stem/frozen_patch}  # OUT=dir writes this run's files elsewhere
mkdir -p $OUT
export PLAIN_RUN=${PLAIN_RUN:-runs/speech/checkpoints_plain22k}
bash benchmarks/stage1_arm.sh $OUT frozen_patch runs/speech/checkpoints_teacher_stem_frozen_patch \
  --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0
