#!/usr/bin/env bash
# Whisper's first encoder layer in the front end (issue 13): the letter probes (../layer_probe/) found most of a new
# voice's loss already in the patch embedding's tokens, while the teacher's states keep new voices about as legible
# as the training voices. Does the teacher's first encoder layer, run frozen on its stem's frames and standardised
# (student.teacher_blocks=1, 1.8 M weights for tiny.en; its projection starts at zero and trains at the stem
# projection's 10 x lr), carry the student to voices it never heard?
# Arms: the morph stage of the release (../hibari_morph/run.sh: the release recipe, seed 6, 800 steps x 16 from
# 73eb500 on configs/student_hibari_morph.yaml) is the control; the same stage with the layer. Paired with the
# control on both unseen-voice sets, dev and, reported only, held-out.
#   bash benchmarks/results/teacher_blocks/run.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/teacher_blocks
CONTROL=runs/hibari_morph/checkpoints   # the morph stage, as ../hibari_morph/run.sh trains it (done: skipped)
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $CONTROL 6 73eb500 "${RELEASE_RECIPE[@]}"
RUN=runs/teacher_blocks/b1
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $RUN 6 73eb500 "${RELEASE_RECIPE[@]}" \
  --set student.teacher_blocks=1
cp $RUN/distill/eval.csv $OUT/b1_eval.csv
cp $RUN/distill/metrics.csv $OUT/b1_metrics.csv
bash benchmarks/pair_sets.sh $OUT "" --export control=$CONTROL/distill/exports/step-000800.safetensors \
  --export teacher_layer_1=$RUN/distill/exports/step-000800.safetensors
bash benchmarks/pair_once.sh $OUT/paired_unseen_release.json --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export teacher_layer_1=$RUN/distill/exports/step-000800.safetensors \
  --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
