#!/usr/bin/env bash
# Whisper's weights or the layer's shape? run.sh's stage with a layer of the teacher's shape after its stem and
# positional table, started at random (student.teacher_blocks_weights=random) and trained at the LoRA's rate
# (train.lr_scale_teacher_blocks=1: a fresh layer must learn from nothing in 800 steps), paired with the release
# (30830d9), the frozen copy (run.sh's b1) and the owned copy (owned.sh's morph stage) on both unseen-voice sets, dev
# and, reported only, held-out.
#   bash benchmarks/results/teacher_blocks/random.sh     # after run.sh's b1 and owned.sh; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
RUN=runs/teacher_blocks/b1_random
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $RUN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  --set student.teacher_blocks=1 --set student.teacher_blocks_weights=random --set train.lr_scale_teacher_blocks=1
cp $RUN/distill/eval.csv $OUT/b1_random_eval.csv
cp $RUN/distill/metrics.csv $OUT/b1_random_metrics.csv
bash benchmarks/pair_sets.sh $OUT _random --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export frozen_layer_1=runs/teacher_blocks/b1/distill/exports/step-000800.safetensors \
  --export owned_layer_1=runs/teacher_blocks/b1_owned/distill/exports/step-000800.safetensors \
  --export random_layer_1=$RUN/distill/exports/step-000800.safetensors
# the random layer against the owned copy directly (the gap with its own interval), on both unseen-voice sets
for SET in unseen_voice_dev:unseen dectalk_dev:dectalk; do
  bash benchmarks/pair_once.sh $OUT/paired_${SET#*:}_random_vs_owned.json \
    --export owned_layer_1=runs/teacher_blocks/b1_owned/distill/exports/step-000800.safetensors \
    --export random_layer_1=$RUN/distill/exports/step-000800.safetensors \
    --shards runs/speech/${SET%:*}/shards --split dev --samples 1000
done
