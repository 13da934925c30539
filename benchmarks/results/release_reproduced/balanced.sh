#!/usr/bin/env bash
# The release's last stage, trained again (issue 13): run.sh reproduced the chain up to the stem student (2925e8b);
# the student released at 2229f82 is that stem student continued by the balanced stage (../ctc_balance/: its stem
# recipe with the CTC weight at 0.05, 400 steps, then continued to 800 with the schedule stretched to the new end).
# Here the same two legs start from the stem student retrained by run.sh, and the result is paired with the release
# on the unseen-voice dev set (the set it was chosen on) and dev, and compared tensor by tensor.
#   bash benchmarks/results/release_reproduced/balanced.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=.venv/bin/python
OUT=benchmarks/results/release_reproduced
RUN=runs/speech/checkpoints_reproduced_balanced
INIT=runs/speech/checkpoints_stem_release/tasks/export/student.safetensors  # run.sh's stem student
RELEASED=$(bash benchmarks/release_at.sh 2229f82)  # the balanced student, released 2026-12-05
[ -f $INIT ] || bash $OUT/run.sh
for STEPS in 400 800; do  # the release's two legs: the schedule of the first ends at 400, the second's at 800
  INIT=$INIT PLAIN_RUN=$RUN AURA_EVAL=0 STEPS=$STEPS bash benchmarks/stage1_arm.sh $OUT balanced $RUN \
    --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
    --set student.ctc_weight=0.05
done
EXPORT=$RUN/distill/exports/step-000800.safetensors
[ -f $OUT/balanced_same_student.json ] || $P -m benchmarks.same_student $RELEASED $EXPORT \
  --out $OUT/balanced_same_student.json
bash benchmarks/pair_once.sh $OUT/balanced_paired_unseen.json --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000 --export released=$RELEASED --export reproduced=$EXPORT
bash benchmarks/pair_once.sh $OUT/balanced_paired_dev.json --split dev --samples 200 \
  --export released=$RELEASED --export reproduced=$EXPORT
