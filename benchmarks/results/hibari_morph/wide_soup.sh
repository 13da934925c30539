#!/usr/bin/env bash
# The wide stage (wide.sh) averaged with the foreign-voices stage (../foreign_voices/run.sh), as the release 30830d9
# averaged the eight-morph stage with it: paired with that release (the rule's comparison), the control and the wide
# stage alone on the unseen-voice set (the gate), dev and, reported only, held-out.
#   bash benchmarks/results/hibari_morph/wide_soup.sh     # after wide.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/hibari_morph
SOUP=runs/hibari_morph_wide/soup_wide_foreign.safetensors
bash benchmarks/soup_once.sh $SOUP \
  runs/hibari_morph_wide/checkpoints/distill/exports/step-000800.safetensors \
  runs/foreign_voices/checkpoints/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _wide_soup --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export control=runs/hibari_28k/checkpoints_control6/distill/exports/step-000800.safetensors \
  --export wide=runs/hibari_morph_wide/checkpoints/distill/exports/step-000800.safetensors --export wide_soup=$SOUP
