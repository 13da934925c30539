#!/usr/bin/env bash
# After run.sh and release.sh (issue 13): the release's stage 2 took the balanced arm's reading of new voices back
# (unseen voices +3.5 points vs its stage 1). Two follow-ups on the 0.05 arm, paired with the release on the
# unseen-voice set and dev: (1) the same stage 2 at a fifth of its learning rate (train.tasks_lr=2e-4): does a gentler
# stage 2 keep the read-out while the generated answers still learn to listen? (2) the arm continued to 800 steps
# (its schedule stretched to the new end): does the gain on new voices grow with the budget?
#   bash benchmarks/results/ctc_balance/more.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/ctc_balance
RELEASED=$(bash benchmarks/release_at.sh 2925e8b)
ARM=runs/speech/checkpoints_ctc_balance_0.05
STAGE1=$ARM/distill/exports/step-000400.safetensors
GENTLE=runs/speech/checkpoints_ctc_balance_0.05_release_lr2e-4
STAGE1=$STAGE1 bash benchmarks/results/student_stem/stage2.sh $GENTLE --set train.tasks_lr=2e-4
cp $GENTLE/tasks/eval.csv $OUT/release_0.05/tasks_lr2e-4_eval.csv
cp $GENTLE/tasks/metrics.csv $OUT/release_0.05/tasks_lr2e-4_metrics.csv
INIT=$RELEASED PLAIN_RUN=$ARM AURA_EVAL=0 STEPS=800 bash benchmarks/stage1_arm.sh $OUT ctc_0.05_800 $ARM \
  --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
  --set student.ctc_weight=0.05
EXPORTS="--export release=$RELEASED --export stage1=$STAGE1 --export stage1_800=$ARM/distill/exports/step-000800.safetensors"
EXPORTS="$EXPORTS --export stage2=runs/speech/checkpoints_ctc_balance_0.05_release/tasks/export/student.safetensors"
EXPORTS="$EXPORTS --export stage2_lr2e-4=$GENTLE/tasks/export/student.safetensors"
for SPLIT in unseen dev; do
  f=$OUT/release_0.05/paired_${SPLIT}_more.json
  SHARDS=""
  [ $SPLIT = unseen ] && SHARDS="--shards runs/speech/unseen_voice_dev/shards --samples 1000" || SHARDS="--samples 200"
  # shellcheck disable=SC2086
  bash benchmarks/pair_once.sh $f $EXPORTS --split dev $SHARDS
done
# (3) the arm continued once more, to 1,200 steps (run after the release, 2026-12-05): does the new-voice gain grow?
INIT=$RELEASED PLAIN_RUN=$ARM AURA_EVAL=0 STEPS=1200 bash benchmarks/stage1_arm.sh $OUT ctc_0.05_1200 $ARM \
  --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
  --set student.ctc_weight=0.05
EXPORTS="--export release=$RELEASED --export stage1_800=$ARM/distill/exports/step-000800.safetensors"
EXPORTS="$EXPORTS --export stage1_1200=$ARM/distill/exports/step-001200.safetensors"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/release_0.05/paired_unseen_1200.json $EXPORTS \
  --split dev --shards runs/speech/unseen_voice_dev/shards --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/release_0.05/paired_dev_1200.json $EXPORTS --split dev --samples 200
