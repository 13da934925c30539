#!/usr/bin/env bash
# LAYERS of Whisper tiny.en's encoder layers owned by the student (student.teacher_blocks=LAYERS at 0.1 x lr), in the
# release's two stages (the release recipe, seed 6, 800 x 16 from 73eb500: the morph corpus, then beside the foreign
# voices' clips): the morph stage paired with BEFORE (the morph stage with one layer fewer), then the soup of both
# stages with the release of commit RELEASE, on both unseen-voice sets, dev and, reported only, held-out, into
# paired_*_SUFFIX.json and paired_*_SUFFIX_soup.json. Resumes; skips what is done. (two.sh, three.sh)
#   bash benchmarks/results/teacher_blocks/owned_stages.sh 3 runs/teacher_blocks/b2_owned 9b11afb three
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 LAYERS BEFORE_RUN RELEASE_COMMIT SUFFIX" >&2; exit 2; }
LAYERS=$1
BEFORE=$2
RELEASE=$3
SUFFIX=$4
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
OWNED=(--set student.teacher_blocks=$LAYERS --set train.lr_scale_teacher_blocks=0.1)
MORPH=runs/teacher_blocks/b${LAYERS}_owned
FOREIGN=runs/teacher_blocks/foreign_b${LAYERS}_owned
LAST=distill/exports/step-000800.safetensors
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $MORPH 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${OWNED[@]}"
cp $MORPH/distill/eval.csv $OUT/b${LAYERS}_owned_eval.csv
cp $MORPH/distill/metrics.csv $OUT/b${LAYERS}_owned_metrics.csv
bash benchmarks/pair_sets.sh $OUT _$SUFFIX --export owned_layers_$((LAYERS - 1))=$BEFORE/$LAST \
  --export owned_layers_$LAYERS=$MORPH/$LAST
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $FOREIGN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${OWNED[@]}"
cp $FOREIGN/distill/eval.csv $OUT/foreign_b${LAYERS}_owned_eval.csv
cp $FOREIGN/distill/metrics.csv $OUT/foreign_b${LAYERS}_owned_metrics.csv
SOUP=runs/teacher_blocks/soup_b${LAYERS}_owned.safetensors
bash benchmarks/soup_once.sh $SOUP $MORPH/$LAST $FOREIGN/$LAST
bash benchmarks/pair_sets.sh $OUT _${SUFFIX}_soup --export release="$(bash benchmarks/release_at.sh $RELEASE)" \
  --export owned_soup_$LAYERS=$SOUP
