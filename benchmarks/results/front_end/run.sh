#!/usr/bin/env bash
# Does a stronger acoustic front end carry the student to a voice it never heard (issue 13)? ../teacher_readout/
# found the voice lost in the student's copy of the teacher, not in the teacher. Here the patch embedding gets a
# convolutional front end (student.front_end_channels=256: two 3-frame Conv1d with GELU refining the mel as a
# residual that starts at zero, so the run starts exactly at the released parts). Two stage-1 arms from the released
# parts vs the plain arm (../kokoro_voices), paired; see benchmarks/stage1_arm.sh:
#   front_end      the front end at the patch embedding's learning rate (lr 1e-3)
#   front_end_lr10 the front end at 10x that (train.lr_scale_front_end=10): in the first arm its zero-initialised
#                  output convolution reached weight norm 0.85 in 400 steps, so the residual stayed near zero
#   front_end_clip_mean  as front_end_lr10, the front end also seeing the clip's mean mel beside every frame
#                  (student.front_end_clip_mean): the voice's average spectrum, to take out
# ARMS="front_end" runs one of them (default: all); STEPS=1200 continues them.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/front_end
for ARM in ${ARMS:-front_end front_end_lr10 front_end_clip_mean}; do
  case $ARM in
    front_end) SCALE=1 CLIP_MEAN=false RUN=runs/speech/checkpoints_front_end DIR=$OUT ;;
    front_end_lr10) SCALE=10 CLIP_MEAN=false RUN=runs/speech/checkpoints_front_end_lr10 DIR=$OUT/lr10 ;;
    front_end_clip_mean) SCALE=10 CLIP_MEAN=true RUN=runs/speech/checkpoints_front_end_clip_mean DIR=$OUT/clip_mean ;;
  esac
  mkdir -p $DIR
  bash benchmarks/stage1_arm.sh $DIR $ARM $RUN --set student.front_end_channels=256 \
    --set train.lr_scale_front_end=$SCALE --set student.front_end_clip_mean=$CLIP_MEAN
done
