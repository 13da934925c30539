#!/usr/bin/env bash
# three.sh's soup trained again on a checkout that kept no runs/ (the fourteenth sitting's came without the soup that
# passed the rule): the data rebuilt from nothing (../../rebuild_data.sh), the two stages with three owned layers
# trained again exactly as owned_stages.sh trained them (the release recipe, seed 6, 800 x 16 from 73eb500, into the
# same run directories, so gate_three.sh and release_three.sh read them), their curves beside the committed ones
# (b3_owned_again_* against b3_owned_*, foreign_b3_owned_again_* against foreign_b3_owned_*), averaged as three.sh
# averaged them. The retrained soup is a new file (Piper's and Festival's clips are not byte-reproducible), so the
# rule is measured on it again, paired with the release (9b11afb) on the four sets (paired_*_three_soup_again.json),
# before the gate (gate_three.sh) measures it.
#   bash benchmarks/results/teacher_blocks/three_again.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
OWNED=(--set student.teacher_blocks=3 --set train.lr_scale_teacher_blocks=0.1)
LAST=distill/exports/step-000800.safetensors
bash benchmarks/rebuild_data.sh   # every set, the DECtalk set too
MORPH=runs/teacher_blocks/b3_owned
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $MORPH 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${OWNED[@]}"
cp $MORPH/distill/eval.csv $OUT/b3_owned_again_eval.csv
cp $MORPH/distill/metrics.csv $OUT/b3_owned_again_metrics.csv
FOREIGN=runs/teacher_blocks/foreign_b3_owned
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $FOREIGN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  "${OWNED[@]}"
cp $FOREIGN/distill/eval.csv $OUT/foreign_b3_owned_again_eval.csv
cp $FOREIGN/distill/metrics.csv $OUT/foreign_b3_owned_again_metrics.csv
SOUP=runs/teacher_blocks/soup_b3_owned.safetensors
bash benchmarks/soup_once.sh $SOUP $MORPH/$LAST $FOREIGN/$LAST
bash benchmarks/pair_sets.sh $OUT _three_soup_again --export release="$(bash benchmarks/release_at.sh 9b11afb)" \
  --export owned_soup_3=$SOUP
bash $OUT/gate_three.sh
