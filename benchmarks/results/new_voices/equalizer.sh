#!/usr/bin/env bash
# The release's other soup ingredient on the grown corpus (after run.sh): the equalizer recipe (half of the clips
# raised, pitch x 1.2-2.6, formants x 1.0-1.2, half heard through the +-15-dB equalizer) from the release (e61da57),
# seed 4, 800 steps x 16 at lr 3e-4, on configs/student_new_voices.yaml; then it alone and its soup with run.sh's
# stage are paired with the release on the unseen-voice set. Started 2026-12-06 at the end of a sitting; resumes.
#   bash benchmarks/results/new_voices/equalizer.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/new_voices
RUN=runs/voices/checkpoints_equalizer
STEP=distill/exports/step-000800.safetensors
CONFIG=configs/student_new_voices.yaml bash benchmarks/voice_stage.sh $RUN 4 e61da57 \
  "${RELEASE_RECIPE[@]}"
cp $RUN/distill/eval.csv $OUT/equalizer_eval.csv
cp $RUN/distill/metrics.csv $OUT/equalizer_metrics.csv
SOUP=runs/soups/new_voices_broad_equalizer.safetensors
bash benchmarks/soup_once.sh $SOUP runs/voices/checkpoints_broad/$STEP $RUN/$STEP
bash benchmarks/pair_once.sh $OUT/paired_unseen_equalizer.json --export release="$(bash benchmarks/release_at.sh e61da57)" \
  --export broad=runs/voices/checkpoints_broad/$STEP --export equalizer=$RUN/$STEP --export soup=$SOUP \
  --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
