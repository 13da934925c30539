#!/usr/bin/env bash
# run.sh's control: the same stage (the release's recipe, seed 5, 800 steps from 0dea27e) on the corpus the release
# trained on (configs/student_hibari.yaml, 25,000 rows), so that the 3,000 new rows are the only difference. Paired
# with the release and run.sh's stage on the unseen-voice set (the gate) and dev; held-out reported only.
#   bash benchmarks/results/hibari_28k/control.sh     # after run.sh; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/hibari_28k
RUN=runs/hibari/checkpoints_seed5
CONFIG=configs/student_hibari.yaml bash benchmarks/voice_stage.sh $RUN 5 0dea27e \
  "${RELEASE_RECIPE[@]}"
cp $RUN/distill/eval.csv $OUT/control_eval.csv
cp $RUN/distill/metrics.csv $OUT/control_metrics.csv
STEP=distill/exports/step-000800.safetensors
EXPORTS="--export release=$(bash benchmarks/release_at.sh 0dea27e) --export hibari_28k=runs/hibari_28k/checkpoints_equalizer/$STEP --export same_corpus=$RUN/$STEP"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen_control.json $EXPORTS --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev_control.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout_control.json $EXPORTS --split heldout --samples 200   # reported only
