#!/usr/bin/env bash
# The bridge baseline at the released student's stage-2 budget (issue 13): Whisper tiny.en's encoder (its final
# layer, cached in the feature store) -> a trained 2-layer MLP projector -> the frozen SmolLM2, 200 steps x 16
# (3,200 examples: the released student's stage-2 learning-curve point of that budget), then the held-out evaluation on the same 400 clips as
# the released student's (`../student/eval`). Data: configs/speech.yaml's (see ../student_continued/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/bridge_equal_budget
RUN=runs/speech/checkpoints_bridge
$A eval --config configs/student.yaml --systems bridge --max-samples 400 --train-bridge auto --bridge-steps ${STEPS:-200} \
  --bridge-batch-size 16 --no-cosine --set paths.checkpoints=$RUN --out $OUT/eval
cp $RUN/bridge/metrics.csv $OUT/bridge_metrics.csv
