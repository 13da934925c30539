#!/usr/bin/env bash
# A release candidate from run.sh's finding (issue 13): the release continued with the raised-pitch shift for 800
# steps at a third of the peak rate (3e-4; run.sh's 1e-3 restart cost its control +2.4 points on new voices), then
# paired with the release on the unseen-voice set (the set releases are chosen on), dev and, reported only, held-out.
# Started 2026-12-05 at the end of a sitting; every step resumes or skips what is done.
#   bash benchmarks/results/high_pitch/candidate.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/high_pitch/candidate
mkdir -p $OUT
RELEASED=$(bash benchmarks/release_at.sh 2229f82)
RUN=runs/speech/checkpoints_high_pitch_candidate
INIT=$RELEASED PLAIN_RUN=$RUN AURA_EVAL=0 STEPS=800 bash benchmarks/stage1_arm.sh $OUT candidate $RUN \
  --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
  --set student.ctc_weight=0.05 --set train.speaker_shift=0.5 --set "train.speaker_formant_range=[1.0,1.2]" \
  --set "train.speaker_pitch_range=[1.2,2.6]" --set train.lr=3e-4
EXPORTS="--export release=$RELEASED --export candidate=$RUN/distill/exports/step-000800.safetensors"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen.json $EXPORTS --shards runs/speech/unseen_voice_dev/shards --split dev \
  --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout.json $EXPORTS --split heldout --samples 200   # reported only
