#!/usr/bin/env bash
# The release 30830d9 (the soup of the eight-morph and foreign-voices stages) trained on: the same stage (the release's
# recipe, 800 steps, seed 7) on the cloud stage's corpus (configs/student_hibari_morph_cloud.yaml: its 6,000 morph rows
# a speaker each), paired with that release (the rule's comparison) and the cloud stage on the unseen-voice set (the
# gate), dev and, reported only, held-out.
#   bash benchmarks/results/hibari_morph/continued.sh     # after cloud.sh; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/hibari_morph
RUN=runs/hibari_morph_cloud/checkpoints_from_release
CONFIG=configs/student_hibari_morph_cloud.yaml bash benchmarks/voice_stage.sh $RUN 7 30830d9 "${RELEASE_RECIPE[@]}"
cp $RUN/distill/eval.csv $OUT/continued_eval.csv
cp $RUN/distill/metrics.csv $OUT/continued_metrics.csv
bash benchmarks/pair_sets.sh $OUT _continued --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export cloud=runs/hibari_morph_cloud/checkpoints/distill/exports/step-000800.safetensors \
  --export continued=$RUN/distill/exports/step-000800.safetensors
