#!/usr/bin/env bash
# A release candidate from run.sh's finding (issue 13): the release's high-pitch stage again from its start (the
# balanced student, 2229f82), 800 steps x 16 at lr 3e-4, with half of the clips also heard through the +-15-dB
# equalizer, so that the equalizer's gain does not pay for extra steps; then paired with the release (742786a) on the
# unseen-voice set (the gate: the upper end of the 95 % interval below 0), dev and, reported only, held-out.
# Started 2026-12-05 at the end of a sitting; every step resumes or skips what is done.
#   bash benchmarks/results/equalizer/candidate.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/equalizer/candidate
mkdir -p $OUT
RUN=runs/speech/checkpoints_equalizer_candidate
# The data, on a machine that kept nothing (each renders/ingests/computes only what is missing; ~42 min from nothing)
STOP_AFTER=speech bash benchmarks/rebuild_data.sh
bash benchmarks/voice_stage.sh $RUN 0 2229f82 "${RELEASE_RECIPE[@]}"
cp $RUN/distill/eval.csv $OUT/candidate_eval.csv
cp $RUN/distill/metrics.csv $OUT/candidate_metrics.csv
EXPORTS="--export release=$(bash benchmarks/release_at.sh 742786a) --export candidate=$RUN/distill/exports/step-000800.safetensors"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen.json $EXPORTS --shards runs/speech/unseen_voice_dev/shards --split dev \
  --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout.json $EXPORTS --split heldout --samples 200   # reported only
