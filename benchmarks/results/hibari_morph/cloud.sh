#!/usr/bin/env bash
# A speaker for every row: the wide stage's 6,000 added rows (the same texts, speeds and augmentations) spoken by
# hibari:heart_morphs, which draws each row's vocal tract and pitch over the 24 named morphs' span
# (configs/student_hibari_morph_cloud.yaml). The same stage (the release's recipe, seed 6, from 73eb500), paired with
# the control and the wide stage (24 speakers) on the unseen-voice set, dev and, reported only, held-out; then its
# soup with the foreign-voices stage, paired with the release 30830d9. Separates more speakers from more rows.
#   bash benchmarks/results/hibari_morph/cloud.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/hibari_morph
CONFIG=configs/student_hibari_morph_cloud.yaml
bash benchmarks/grow_corpus.sh runs/hibari_morph_cloud $CONFIG runs/hibari_28k
cp runs/hibari_morph_cloud/corpus/summary.md $OUT/corpus_summary_cloud.md
[ "${GROW_ONLY:-}" = 1 ] && exit 0
CLOUD=runs/hibari_morph_cloud/checkpoints
CONFIG=$CONFIG bash benchmarks/voice_stage.sh $CLOUD 6 73eb500 "${RELEASE_RECIPE[@]}"
cp $CLOUD/distill/eval.csv $OUT/cloud_eval.csv
cp $CLOUD/distill/metrics.csv $OUT/cloud_metrics.csv
bash benchmarks/pair_sets.sh $OUT _cloud --export control=runs/hibari_28k/checkpoints_control6/distill/exports/step-000800.safetensors \
  --export wide=runs/hibari_morph_wide/checkpoints/distill/exports/step-000800.safetensors \
  --export cloud=$CLOUD/distill/exports/step-000800.safetensors
SOUP=runs/hibari_morph_cloud/soup_cloud_foreign.safetensors
bash benchmarks/soup_once.sh $SOUP $CLOUD/distill/exports/step-000800.safetensors \
  runs/foreign_voices/checkpoints/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _cloud_soup --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export wide_soup=runs/hibari_morph_wide/soup_wide_foreign.safetensors --export cloud_soup=$SOUP
