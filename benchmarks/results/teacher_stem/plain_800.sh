#!/usr/bin/env bash
# The plain arm of run.sh continued to 800 steps (schedule stretched as continue.sh's), then paired with the stem
# continued to 800 (continue.sh; resumed here, so nothing is retrained) by stage1_arm.sh itself:
# paired_{heldout,dev}_800.json. frozen_patch.sh pairs with the same plain run. Resumes when run again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_stem
export STEPS=800 PLAIN_RUN=runs/speech/checkpoints_plain22k
bash benchmarks/stage1_arm.sh $OUT plain $PLAIN_RUN
AURA_EVAL=0 bash benchmarks/stage1_arm.sh $OUT stem runs/speech/checkpoints_teacher_stem --set student.teacher_stem=true \
  --set train.lr_scale_front_end=10
