#!/usr/bin/env bash
# The teacher's first layer owned by the student (issue 13): run.sh's stage with the copied layer trained
# (train.lr_scale_teacher_blocks=0.1: 3e-5 at the peak, a tenth of the LoRA's, as one fine-tunes a pretrained layer)
# rather than frozen: the student starts from its teacher's layer, as a distilled student may (DistilBERT starts from
# every other layer of BERT), and what runs at inference is then its own. Both release ingredients (the morph stage
# and the foreign-voices stage, the release recipe, seed 6, 800 x 16 from 73eb500) with the owned layer, their soup
# (as the release's), paired with the release (30830d9) beside the frozen layer's morph stage (run.sh's b1) on both
# unseen-voice sets, dev and, reported only, held-out.
#   bash benchmarks/results/teacher_blocks/owned.sh     # after run.sh's b1 stage; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
OWNED=(--set student.teacher_blocks=1 --set train.lr_scale_teacher_blocks=0.1)
MORPH=runs/teacher_blocks/b1_owned
FOREIGN=runs/teacher_blocks/foreign_b1_owned
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $MORPH 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${OWNED[@]}"
cp $MORPH/distill/eval.csv $OUT/b1_owned_eval.csv
cp $MORPH/distill/metrics.csv $OUT/b1_owned_metrics.csv
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $FOREIGN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${OWNED[@]}"
cp $FOREIGN/distill/eval.csv $OUT/foreign_b1_owned_eval.csv
cp $FOREIGN/distill/metrics.csv $OUT/foreign_b1_owned_metrics.csv
SOUP=runs/teacher_blocks/soup_b1_owned.safetensors
bash benchmarks/soup_once.sh $SOUP $MORPH/distill/exports/step-000800.safetensors \
  $FOREIGN/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _owned --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export frozen_layer_1=runs/teacher_blocks/b1/distill/exports/step-000800.safetensors \
  --export owned_layer_1=$MORPH/distill/exports/step-000800.safetensors --export owned_soup=$SOUP
