#!/usr/bin/env bash
# Is the stem's -2.8 points at 400 steps a property of the stem or of one data order? run.sh's two arms again with
# another train.seed (the order of the training clips; both arms start from the released parts), paired on the same
# clips as run.sh's. SEED=2 ... for more. Pairs only (no `aura eval`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
SEED=${SEED:-1}
OUT=benchmarks/results/teacher_stem/seed$SEED
mkdir -p $OUT
export PLAIN_RUN=runs/speech/checkpoints_plain22k_seed$SEED AURA_EVAL=0
bash benchmarks/stage1_arm.sh $OUT plain $PLAIN_RUN --set train.seed=$SEED
bash benchmarks/stage1_arm.sh $OUT stem runs/speech/checkpoints_teacher_stem_seed$SEED --set train.seed=$SEED \
  --set student.teacher_stem=true --set train.lr_scale_front_end=10
