#!/usr/bin/env bash
# Two of Whisper tiny.en's four encoder layers owned by the student (after random.sh: a layer of that shape started at
# random gains nothing in a stage, so the gain is Whisper's weights; the next question is whether a second layer of
# them adds more). owned.sh's two stages (the release recipe, seed 6, 800 x 16 from 73eb500) with
# student.teacher_blocks=2 at 0.1 x lr; the morph stage paired with owned.sh's (one layer) first, then the soup of
# both stages with the release (a25cf19, owned.sh's soup), on both unseen-voice sets, dev and, reported only, held-out.
#   bash benchmarks/results/teacher_blocks/two.sh     # after owned.sh; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
TWO=(--set student.teacher_blocks=2 --set train.lr_scale_teacher_blocks=0.1)
MORPH=runs/teacher_blocks/b2_owned
FOREIGN=runs/teacher_blocks/foreign_b2_owned
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $MORPH 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${TWO[@]}"
cp $MORPH/distill/eval.csv $OUT/b2_owned_eval.csv
cp $MORPH/distill/metrics.csv $OUT/b2_owned_metrics.csv
bash benchmarks/pair_sets.sh $OUT _two \
  --export owned_layer_1=runs/teacher_blocks/b1_owned/distill/exports/step-000800.safetensors \
  --export owned_layers_2=$MORPH/distill/exports/step-000800.safetensors
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $FOREIGN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${TWO[@]}"
cp $FOREIGN/distill/eval.csv $OUT/foreign_b2_owned_eval.csv
cp $FOREIGN/distill/metrics.csv $OUT/foreign_b2_owned_metrics.csv
SOUP=runs/teacher_blocks/soup_b2_owned.safetensors
bash benchmarks/soup_once.sh $SOUP $MORPH/distill/exports/step-000800.safetensors \
  $FOREIGN/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _two_soup --export release="$(bash benchmarks/release_at.sh a25cf19)" \
  --export owned_soup_2=$SOUP
