#!/usr/bin/env bash
# One stage-1 arm against the plain arm (issue 13): the student continued from the released parts (INIT) with the recipe
# of benchmarks/results/kokoro_voices/run.sh (distillation + 0.5 x CTC, lr 1e-3, warm-up 20, 16 clips a step, the
# 27,000-row corpus of configs/speech.yaml) plus this arm's own overrides, then compared with the plain arm (same
# budget and data, no overrides) on the same clips, paired: held-out (voice pico:en-GB, never trained on) and dev;
# and `aura eval` (CTC read-out, 200 + 200 held-out clips).
#   bash benchmarks/stage1_arm.sh RESULTS_DIR NAME RUN_DIR [--set key=value ...]
#   STEPS=1200 bash benchmarks/stage1_arm.sh ...   # continues the run (the schedule stretches to the new end)
#   PLAIN_RUN=runs/x bash benchmarks/stage1_arm.sh RESULTS plain runs/x   # trains a plain arm of its own (no pairing)
#   AURA_EVAL=0 bash benchmarks/stage1_arm.sh ...   # pairs only (no `aura eval`, ~8 min less on 2 cores)
# Every step resumes or skips finished work when run again. Writes RESULTS_DIR/{NAME_eval.csv, NAME_metrics.csv,
# paired_{heldout,dev}_STEPS.json, eval_NAME_STEPS/}.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 RESULTS_DIR NAME RUN_DIR [--set key=value ...]" >&2; exit 2; }
OUT=$1 NAME=$2 RUN=$3
shift 3
cd "$(dirname "$0")/.."
A=.venv/bin/aura
# Every arm recorded with this script started from the release of 2026-12-03 (replaced by the stem student on
# 2026-12-04); INIT=path starts a new arm elsewhere.
INIT=${INIT:-$(bash benchmarks/release_at.sh 535718a)}
STEPS=${STEPS:-400}
STEP=$(printf %06d "$STEPS")
PLAIN_RUN=${PLAIN_RUN:-runs/speech/checkpoints_kokoro}  # the plain arm's run (results/kokoro_voices)
PLAIN=$PLAIN_RUN/distill/exports/step-$STEP.safetensors
EXPORT=$RUN/distill/exports/step-$STEP.safetensors
$A train --config configs/student.yaml --stage distill --resume --set train.init_from=$INIT \
  --set student.ctc_weight=0.5 --set paths.checkpoints=$RUN --set train.max_steps=$STEPS --set train.lr=1e-3 \
  --set train.warmup_steps=20 --set train.checkpoint_every=100 --set train.eval_samples=120 \
  --set train.eval_every=$STEPS "$@"
cp $RUN/distill/eval.csv $OUT/${NAME}_eval.csv
cp $RUN/distill/metrics.csv $OUT/${NAME}_metrics.csv
for SPLIT in heldout dev; do
  [ "$RUN" = "$PLAIN_RUN" ] && break  # the plain arm itself: nothing to pair with
  [ -f $OUT/paired_${SPLIT}_$STEPS.json ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml \
    --split $SPLIT --samples 200 --export plain=$PLAIN --export $NAME=$EXPORT --out $OUT/paired_${SPLIT}_$STEPS.json
done
[ "${AURA_EVAL:-1}" = 0 ] || [ -f $OUT/eval_${NAME}_$STEPS/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $EXPORT --out $OUT/eval_${NAME}_$STEPS
