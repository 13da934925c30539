#!/usr/bin/env bash
# Does the current release (30830d9, the soup of the morph and foreign-voices stages) come back from its recipe on a
# machine that kept nothing (issue 13)? The data are rebuilt from nothing (benchmarks/rebuild_data.sh), the two stages
# trained again exactly as ../hibari_morph/run.sh and ../foreign_voices/run.sh trained them (the release's recipe, seed
# 6, 800 steps x 16 from 73eb500, into the same run directories), averaged as ../hibari_morph/soup.sh did and packed
# fp16 as ../hibari_morph/release.sh did (into runs/reproduced_30830d9, not over the release). Then compared with the
# released file: tensor by tensor (`same_student_30830d9.json`) and paired, CTC read-out, on the four sets
# (benchmarks/pair_sets.sh: both unseen-voice sets, dev and held-out; `paired_*_30830d9.json`), beside the release it
# started from (73eb500). The stages' curves land beside the committed ones (`morph_{eval,metrics}.csv` here against
# ../hibari_morph/'s, `foreign_{eval,metrics}.csv` against ../foreign_voices/'s).
#   bash benchmarks/results/release_reproduced/soup_30830d9.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/release_reproduced
P=.venv/bin/python
STEP=distill/exports/step-000800.safetensors
STOP_AFTER=release bash benchmarks/rebuild_data.sh   # the stages' data first
MORPH=runs/hibari_morph/checkpoints
CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $MORPH 6 73eb500 "${RELEASE_RECIPE[@]}"
cp $MORPH/distill/eval.csv $OUT/morph_eval.csv
cp $MORPH/distill/metrics.csv $OUT/morph_metrics.csv
FOREIGN=runs/foreign_voices/checkpoints
CONFIG=configs/foreign_voices.yaml bash benchmarks/voice_stage.sh $FOREIGN 6 73eb500 "${RELEASE_RECIPE[@]}"
cp $FOREIGN/distill/eval.csv $OUT/foreign_eval.csv
cp $FOREIGN/distill/metrics.csv $OUT/foreign_metrics.csv
SOUP=runs/hibari_morph/soup_morph_foreign.safetensors
bash benchmarks/soup_once.sh $SOUP $MORPH/$STEP $FOREIGN/$STEP
PACKED=runs/reproduced_30830d9/student.safetensors
[ -f $PACKED ] || OUT_DIR=runs/reproduced_30830d9 bash benchmarks/results/hibari_morph/release.sh
RELEASED=$(bash benchmarks/release_at.sh 30830d9)
bash benchmarks/rebuild_data.sh   # the rest: the DECtalk set
$P -m benchmarks.same_student "$RELEASED" $PACKED --out $OUT/same_student_30830d9.json
bash benchmarks/pair_sets.sh $OUT _30830d9 --export released="$RELEASED" --export reproduced=$PACKED \
  --export r73eb500="$(bash benchmarks/release_at.sh 73eb500)"
