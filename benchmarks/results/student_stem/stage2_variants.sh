#!/usr/bin/env bash
# What the stage 2 after the stem stage costs the CTC read-out on new voices, tuned on the unseen-voice dev set
# (issue 13): the released run's own stage-2 exports at 50 / 100 / 150 steps, and stage 2s that differ from
# run.sh's in one setting: the CTC term at 1.0 instead of 0.3 (ctc1), the stem's projection at the base learning
# rate instead of x10 (front1); all paired with the stem stage's export on the 220 unseen-voice clips. The
# listening test of the generated answers (dev, 120 clips) is in each run's eval.csv.
#   bash benchmarks/results/student_stem/stage2_variants.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=.venv/bin/python
OUT=benchmarks/results/student_stem
STAGE1=runs/speech/checkpoints_teacher_stem_frozen_patch/distill/exports/step-000400.safetensors
RELEASE_RUN=runs/speech/checkpoints_stem_release/tasks/exports
variant() {  # NAME --set ... : stage2.sh with these overrides, into runs/speech/checkpoints_stem_release_NAME
  local NAME=$1 RUN=runs/speech/checkpoints_stem_release_$1
  shift
  STAGE1=$STAGE1 bash $OUT/stage2.sh $RUN "$@"
  cp $RUN/tasks/eval.csv $OUT/${NAME}_tasks_eval.csv
}
variant ctc1 --set train.tasks_ctc_weight=1.0
[ -f $OUT/paired_unseen_stage2.json ] || $P -m benchmarks.paired_ctc --config configs/student.yaml \
  --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 --export stage1=$STAGE1 \
  --export ctc03_50=$RELEASE_RUN/step-000050.safetensors --export ctc03_100=$RELEASE_RUN/step-000100.safetensors \
  --export ctc03_150=$RELEASE_RUN/step-000150.safetensors \
  --export ctc1_150=runs/speech/checkpoints_stem_release_ctc1/tasks/exports/step-000150.safetensors \
  --out $OUT/paired_unseen_stage2.json
variant front1 --set train.lr_scale_front_end=1
[ -f $OUT/paired_unseen_front1.json ] || $P -m benchmarks.paired_ctc --config configs/student.yaml \
  --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 --export stage1=$STAGE1 \
  --export front1_50=runs/speech/checkpoints_stem_release_front1/tasks/exports/step-000050.safetensors \
  --export front1_150=runs/speech/checkpoints_stem_release_front1/tasks/exports/step-000150.safetensors \
  --export ctc03_150=$RELEASE_RUN/step-000150.safetensors --out $OUT/paired_unseen_front1.json
