#!/usr/bin/env bash
# candidate.sh's three-way soup did not pass the gate (unseen-voice set -0.3, 95 % -1.2 .. +0.6). Its ingredients
# alone and the soup of the two seed-differing stages without the high-pitch one (the equalizer stage, seed 0, and
# the broad-warp stage, seed 1; benchmarks/student_soup.py), paired with the release (fd0397c) on the unseen-voice
# set (the gate), then the two-way soup on dev and, reported only, held-out.
#   bash benchmarks/results/soup_broad/soups.sh     # after candidate.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/soup_broad
EQUALIZER=runs/speech/checkpoints_equalizer_candidate/distill/exports/step-000800.safetensors
BROAD=runs/speech/checkpoints_soup_broad/distill/exports/step-000800.safetensors
SOUP=runs/soups/equalizer_broad.safetensors
bash benchmarks/soup_once.sh $SOUP $EQUALIZER $BROAD
RELEASED=$(bash benchmarks/release_at.sh fd0397c)
bash benchmarks/pair_once.sh $OUT/paired_unseen_ingredients.json --export release="$RELEASED" --export broad=$BROAD \
  --export equalizer_broad=$SOUP --export equalizer=$EQUALIZER --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000
bash benchmarks/pair_once.sh $OUT/paired_dev_equalizer_broad.json --export release="$RELEASED" \
  --export equalizer_broad=$SOUP --split dev --samples 200
bash benchmarks/pair_once.sh $OUT/paired_heldout_equalizer_broad.json --export release="$RELEASED" \
  --export equalizer_broad=$SOUP --split heldout --samples 200   # reported only
