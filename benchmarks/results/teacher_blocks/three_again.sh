#!/usr/bin/env bash
# three.sh's soup trained again on a checkout that kept no runs/ (the fourteenth sitting's came without the soup that
# passed the rule): the data rebuilt from nothing (../../rebuild_data.sh), the two stages with three owned layers
# trained again exactly as owned_stages.sh trained them (the release recipe, seed 6, 800 x 16 from 73eb500, into the
# same run directories, so gate_three.sh and release_three.sh read them), their curves beside the committed ones
# (b3_owned_again_* against b3_owned_*, foreign_b3_owned_again_* against foreign_b3_owned_*), averaged as three.sh
# averaged them. The retrained soup is a new file (Piper's and Festival's clips are not byte-reproducible), so the
# rule is measured on it again, paired with the release (9b11afb) on the four sets (paired_*_three_soup_again.json),
# before the gate (gate_three.sh) measures it. Each finished stage's export is kept in fp16 under kept/
# (../../keep_stage.sh) for the sittings whose checkout comes without runs/: a stage whose export is kept is not
# trained again (its copy is put where the stage would have written it).
#   bash benchmarks/results/teacher_blocks/three_again.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
OWNED=(--set student.teacher_blocks=3 --set train.lr_scale_teacher_blocks=0.1)
LAST=distill/exports/step-000800.safetensors
stage() {  # RUN_DIR CONFIG CURVES_NAME: the stage, unless its export is there or kept
  local run=$1 config=$2 name=$3
  if [ ! -f "$run/$LAST" ] && [ -f "$OUT/kept/$name.safetensors" ]; then
    mkdir -p "$(dirname "$run/$LAST")"
    cp "$OUT/kept/$name.safetensors" "$run/$LAST"
  fi
  [ -f "$run/$LAST" ] || CONFIG=$config bash benchmarks/voice_stage.sh "$run" 6 73eb500 "${RELEASE_RECIPE[@]}" \
    "${OWNED[@]}"
  if [ -f "$run/distill/metrics.csv" ]; then
    cp "$run/distill/eval.csv" "$OUT/${name}_eval.csv"
    cp "$run/distill/metrics.csv" "$OUT/${name}_metrics.csv"
  fi
  bash benchmarks/keep_stage.sh "$run/$LAST" "$OUT/kept/$name.safetensors"
}
bash benchmarks/rebuild_data.sh   # every set, the DECtalk set too
MORPH=runs/teacher_blocks/b3_owned
stage $MORPH configs/student_hibari_morph.yaml b3_owned_again
FOREIGN=runs/teacher_blocks/foreign_b3_owned
stage $FOREIGN configs/foreign_voices.yaml foreign_b3_owned_again
SOUP=runs/teacher_blocks/soup_b3_owned.safetensors
bash benchmarks/soup_once.sh $SOUP $MORPH/$LAST $FOREIGN/$LAST
bash benchmarks/pair_sets.sh $OUT _three_soup_again --export release="$(bash benchmarks/release_at.sh 9b11afb)" \
  --export owned_soup_3=$SOUP
bash $OUT/gate_three.sh
