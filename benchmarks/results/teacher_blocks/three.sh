#!/usr/bin/env bash
# Three of Whisper tiny.en's four encoder layers owned by the student (after two.sh: the second layer gained about as
# much on new voices as the first; does a third?). two.sh's two stages (the release recipe, seed 6, 800 x 16 from
# 73eb500) with student.teacher_blocks=3 at 0.1 x lr; the morph stage paired with two.sh's (two layers) first, then
# the soup of both stages with the release (9b11afb, two.sh's soup packed), on both unseen-voice sets, dev and,
# reported only, held-out.
#   bash benchmarks/results/teacher_blocks/three.sh     # after two.sh; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
THREE=(--set student.teacher_blocks=3 --set train.lr_scale_teacher_blocks=0.1)
MORPH=runs/teacher_blocks/b3_owned
FOREIGN=runs/teacher_blocks/foreign_b3_owned
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $MORPH 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${THREE[@]}"
cp $MORPH/distill/eval.csv $OUT/b3_owned_eval.csv
cp $MORPH/distill/metrics.csv $OUT/b3_owned_metrics.csv
bash benchmarks/pair_sets.sh $OUT _three \
  --export owned_layers_2=runs/teacher_blocks/b2_owned/distill/exports/step-000800.safetensors \
  --export owned_layers_3=$MORPH/distill/exports/step-000800.safetensors
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $FOREIGN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${THREE[@]}"
cp $FOREIGN/distill/eval.csv $OUT/foreign_b3_owned_eval.csv
cp $FOREIGN/distill/metrics.csv $OUT/foreign_b3_owned_metrics.csv
SOUP=runs/teacher_blocks/soup_b3_owned.safetensors
bash benchmarks/soup_once.sh $SOUP $MORPH/distill/exports/step-000800.safetensors \
  $FOREIGN/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _three_soup --export release="$(bash benchmarks/release_at.sh 9b11afb)" \
  --export owned_soup_3=$SOUP
