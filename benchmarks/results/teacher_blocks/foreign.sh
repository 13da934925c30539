#!/usr/bin/env bash
# The release's other ingredient with the teacher's first layer (../foreign_voices/run.sh's "foreign" arm, the
# release recipe on configs/foreign_voices.yaml from 73eb500, seed 6, with student.teacher_blocks=1), then the two
# stages with the layer averaged as the release's were (benchmarks/soup_once.sh, as ../hibari_morph/soup.sh), paired with
# the release (30830d9) and with the morph stage with the layer alone. Not run yet (2026-12-07).
#   bash benchmarks/results/teacher_blocks/foreign.sh     # after run.sh; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
RUN=runs/teacher_blocks/foreign_b1
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $RUN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  --set student.teacher_blocks=1
cp $RUN/distill/eval.csv $OUT/foreign_b1_eval.csv
cp $RUN/distill/metrics.csv $OUT/foreign_b1_metrics.csv
SOUP=runs/teacher_blocks/soup_b1.safetensors
bash benchmarks/soup_once.sh $SOUP runs/teacher_blocks/b1/distill/exports/step-000800.safetensors \
  $RUN/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _soup --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export teacher_layer_1=runs/teacher_blocks/b1/distill/exports/step-000800.safetensors --export soup=$SOUP
