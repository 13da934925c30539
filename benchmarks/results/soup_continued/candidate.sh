#!/usr/bin/env bash
# Another round of the soup (issue 13): the release of e61da57 averages two stages trained from the balanced student
# (2229f82), the equalizer stage (seed 0) and the broad-warp stage (seed 1). Here the same two recipes start from that
# soup instead, with new seeds (3, 4): **broad** (half of the clips warped both ways, pitch x 0.7-2.6, formants x
# 0.85-1.25) and **equalizer** (half raised, pitch x 1.2-2.6, formants x 1.0-1.2, and half heard through the
# +-15-dB equalizer), 800 steps x 16 at lr 3e-4 each. Then each alone, their soup and the soup of the three
# (the two + the release) are paired with the release on the unseen-voice set (the gate: the upper end of the 95 %
# interval below 0), dev and, reported only, held-out.
#   bash benchmarks/results/soup_continued/candidate.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/soup_continued
BROAD=runs/speech/checkpoints_continued_broad
EQUALIZER=runs/speech/checkpoints_continued_equalizer
bash benchmarks/voice_stage.sh $BROAD 3 e61da57 "${BROAD_SHIFT[@]}"
RELEASED=$(bash benchmarks/release_at.sh e61da57)
STEP=distill/exports/step-000800.safetensors
# The first stage checked before the second runs: alone and averaged with the release it started from.
bash benchmarks/soup_once.sh runs/soups/continued_broad_release.safetensors $BROAD/$STEP "$RELEASED"
bash benchmarks/pair_once.sh $OUT/paired_unseen_broad.json --export release="$RELEASED" --export broad=$BROAD/$STEP \
  --export broad_release=runs/soups/continued_broad_release.safetensors --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000
# Stopped here on 2026-12-06 (README.md): the second stage ran to step 351 of 800 (checkpoint 300), resumable.
bash benchmarks/voice_stage.sh $EQUALIZER 4 e61da57 "${RELEASE_RECIPE[@]}"
for RUN in $BROAD $EQUALIZER; do
  NAME=${RUN##*_}
  cp $RUN/distill/eval.csv $OUT/${NAME}_eval.csv
  cp $RUN/distill/metrics.csv $OUT/${NAME}_metrics.csv
done
SOUP2=runs/soups/continued_broad_equalizer.safetensors
SOUP3=runs/soups/continued_broad_equalizer_release.safetensors
bash benchmarks/soup_once.sh $SOUP2 $BROAD/$STEP $EQUALIZER/$STEP
bash benchmarks/soup_once.sh $SOUP3 $BROAD/$STEP $EQUALIZER/$STEP "$RELEASED"
bash benchmarks/pair_once.sh $OUT/paired_unseen.json --export release="$RELEASED" --export broad=$BROAD/$STEP \
  --export equalizer=$EQUALIZER/$STEP --export soup2=$SOUP2 --export soup3=$SOUP3 \
  --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
