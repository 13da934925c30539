#!/usr/bin/env bash
# Does the teacher's own convolutional stem carry the student to a voice it never heard (issue 13)? The stage-1 arm
# recipe of benchmarks/stage1_arm.sh on the 22,000-row corpus (as ../speaker_adversary/run.sh), two arms of the same
# budget and data order: "plain" (trained by that script, shared) and "stem": student.teacher_stem (Whisper's
# conv1 + conv2, frozen, its frames projected into each audio token through a zero-initialised projection) with that
# projection at 10x the learning rate (train.lr_scale_front_end=10, as the front end needed). Paired on the same 200
# held-out clips (voice pico:en-GB, never trained on) and 200 dev clips, and `aura eval` of the arm.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_stem
export PLAIN_RUN=runs/speech/checkpoints_plain22k
bash benchmarks/stage1_arm.sh $OUT plain $PLAIN_RUN
bash benchmarks/stage1_arm.sh $OUT stem runs/speech/checkpoints_teacher_stem --set student.teacher_stem=true \
  --set train.lr_scale_front_end=10
