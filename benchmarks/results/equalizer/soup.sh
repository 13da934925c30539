#!/usr/bin/env bash
# candidate.sh's student did not pass the gate alone (unseen-voice set -0.9, 95 % -2.1 .. +0.2; dev +1.2): its
# weights averaged with the release's (both continued from the balanced student, 2229f82, 800 steps: one with the
# raised pitch, one with the raised pitch and the +-15-dB equalizer; benchmarks/student_soup.py), then paired with
# the release on the unseen-voice set (the gate), dev and, reported only, held-out, and the rest of the release gate
# (../../release_gate.sh).
#   bash benchmarks/results/equalizer/soup.sh     # after candidate.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/equalizer/candidate
SOUP=runs/soups/equalizer_release.safetensors
RELEASED=$(bash benchmarks/release_at.sh 742786a)
bash benchmarks/soup_once.sh $SOUP \
  runs/speech/checkpoints_equalizer_candidate/distill/exports/step-000800.safetensors "$RELEASED"
EXPORTS="--export release=$RELEASED --export soup=$SOUP"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen_soup.json $EXPORTS --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev_soup.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout_soup.json $EXPORTS --split heldout --samples 200   # reported only
bash benchmarks/release_gate.sh $OUT/soup_gate 742786a $SOUP
