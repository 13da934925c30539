#!/usr/bin/env bash
# Does SpecAugment carry the student to a voice it never heard (issue 13)? Masked mel bands (2 of at most 20 of the
# 80 channels) and stretches (2 of at most 5 % of the clip) on the student's side, the teacher's targets unmasked,
# so no single band (a voice's formants, its pitch harmonics) can be relied on. One stage-1 arm from the released
# parts vs the plain arm (../kokoro_voices), paired; see benchmarks/stage1_arm.sh. STEPS=1200 continues it.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash benchmarks/stage1_arm.sh benchmarks/results/spec_augment specaug runs/speech/checkpoints_specaug \
  --set train.spec_freq_masks=2 --set train.spec_freq_width=20 --set train.spec_time_masks=2 \
  --set train.spec_time_share=0.05
