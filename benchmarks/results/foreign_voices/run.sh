#!/usr/bin/env bash
# New timbres without words (issue 13): can untranscribed speech in voices far from the training voices carry the
# student to voices it never heard? 2,400 of the release corpus's training texts (configs/student_hibari_28k.yaml),
# read by Festival's eight Italian, Catalan, Czech and Finnish voices (engine festival-foreign: their own
# letter-to-sound rules, so accented and left untranscribed), distilled beside the release's transcribed corpus
# replayed (three quarters of each epoch's clips; the CTC term falls on those alone): configs/foreign_voices.yaml.
# Arm "foreign": the release's own recipe (benchmarks/voice_stage.sh with the equalizer stage's options; 800 steps x
# 16 at lr 3e-4, seed 6) from the release (73eb500) on that mix. Arm "control": the same recipe and seed on the
# release's corpus alone. Both paired with the release on the unseen-voice set (the gate), dev and, reported only,
# held-out.
#   bash benchmarks/results/foreign_voices/run.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/foreign_voices
P=.venv/bin/python
VOICES=$($P -c "from pipeline.data.engines import FestivalForeignEngine as E; print(','.join('festival-foreign:' + v for v in E.VOICES))")
[ -f runs/foreign_voices/shards/manifest.parquet ] || $P -m benchmarks.unseen_voice_dev \
  --config configs/student_hibari_28k.yaml --split train --rows 2400 --untranscribed --voices "$VOICES" \
  --out runs/foreign_voices
.venv/bin/aura precompute --config configs/foreign_voices.yaml
FOREIGN=runs/foreign_voices/checkpoints
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $FOREIGN 6 73eb500 "${RELEASE_RECIPE[@]}"
cp $FOREIGN/distill/eval.csv $OUT/foreign_eval.csv
cp $FOREIGN/distill/metrics.csv $OUT/foreign_metrics.csv
RELEASE=$(bash benchmarks/release_at.sh 73eb500)
bash benchmarks/pair_sets.sh $OUT "" --export release="$RELEASE" \
  --export foreign=$FOREIGN/distill/exports/step-000800.safetensors
CONTROL=runs/hibari_28k/checkpoints_control6
CONFIG=configs/student_hibari_28k.yaml bash benchmarks/voice_stage.sh $CONTROL 6 73eb500 "${RELEASE_RECIPE[@]}"
cp $CONTROL/distill/metrics.csv $OUT/control_metrics.csv
cp $CONTROL/distill/eval.csv $OUT/control_eval.csv
bash benchmarks/pair_sets.sh $OUT _control --export release="$RELEASE" \
  --export control=$CONTROL/distill/exports/step-000800.safetensors \
  --export foreign=$FOREIGN/distill/exports/step-000800.safetensors
# the two arms against each other (every transcript is kept by now: nothing is read again)
bash benchmarks/pair_sets.sh $OUT _arms --export control=$CONTROL/distill/exports/step-000800.safetensors \
  --export foreign=$FOREIGN/distill/exports/step-000800.safetensors
