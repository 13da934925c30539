#!/usr/bin/env bash
# The four stages from the release of 73eb500 (the same recipe and seed 6 on different added rows: 8 morphs, 24
# morphs, a speaker per row, the foreign voices' clips) averaged with equal weights, paired with the release 30830d9
# (itself the average of two of them) and the cloud soup on the unseen-voice set (the gate), dev and, reported only,
# held-out.
#   bash benchmarks/results/hibari_morph/soup_four.sh     # after cloud.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/hibari_morph
SOUP=runs/hibari_morph_cloud/soup_four.safetensors
STEP=checkpoints/distill/exports/step-000800.safetensors
bash benchmarks/soup_once.sh $SOUP runs/hibari_morph/$STEP runs/hibari_morph_wide/$STEP \
  runs/hibari_morph_cloud/$STEP runs/foreign_voices/$STEP
bash benchmarks/pair_sets.sh $OUT _soup_four --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export cloud_soup=runs/hibari_morph_cloud/soup_cloud_foreign.safetensors --export soup_four=$SOUP
