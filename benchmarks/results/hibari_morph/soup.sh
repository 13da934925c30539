#!/usr/bin/env bash
# The average of the two data stages from the release (benchmarks/student_soup.py, equal weights): the morph stage
# (run.sh) and the foreign-voices stage (../foreign_voices/run.sh), the same recipe, seed and start on different added
# rows. Paired with the release and with the control (the same stage on the release's corpus) on the unseen-voice
# set (the gate), dev and, reported only, held-out.
#   bash benchmarks/results/hibari_morph/soup.sh     # after run.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/hibari_morph
SOUP=runs/hibari_morph/soup_morph_foreign.safetensors
bash benchmarks/soup_once.sh $SOUP \
  runs/hibari_morph/checkpoints/distill/exports/step-000800.safetensors \
  runs/foreign_voices/checkpoints/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _soup --export control=runs/hibari_28k/checkpoints_control6/distill/exports/step-000800.safetensors \
  --export release="$(bash benchmarks/release_at.sh 73eb500)" --export soup=$SOUP
