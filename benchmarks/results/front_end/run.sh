#!/usr/bin/env bash
# Does a stronger acoustic front end carry the student to a voice it never heard (issue 13)? ../teacher_readout/
# found the voice lost in the student's copy of the teacher, not in the teacher. Here the patch embedding gets a
# convolutional front end (student.front_end_channels=256: two 3-frame Conv1d with GELU refining the mel as a
# residual that starts at zero, so the run starts exactly at the released parts). One stage-1 arm from the released
# parts with the recipe of ../kokoro_voices/run.sh (distillation + 0.5 x CTC, lr 1e-3, warm-up 20, 16 clips a step,
# the 27,000-row corpus), compared with that arm (same budget and data, no front end) on the same clips, paired:
# held-out (voice pico:en-GB, never trained on) and dev.
# Every step resumes or skips finished work when run again; STEPS=1200 continues the run (the schedule stretches
# to the new end) and evaluates it again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/front_end
RELEASED=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
STEPS=${STEPS:-400}
RUN=runs/speech/checkpoints_front_end
STEP=$(printf %06d "$STEPS")
PLAIN=runs/speech/checkpoints_kokoro/distill/exports/step-$STEP.safetensors  # ../kokoro_voices
$A train --config configs/student.yaml --stage distill --resume --set train.init_from=$RELEASED \
  --set student.ctc_weight=0.5 --set paths.checkpoints=$RUN --set train.max_steps=$STEPS --set train.lr=1e-3 \
  --set train.warmup_steps=20 --set train.checkpoint_every=100 --set train.eval_samples=120 \
  --set train.eval_every=$STEPS --set student.front_end_channels=256
cp $RUN/distill/eval.csv $OUT/front_end_eval.csv
cp $RUN/distill/metrics.csv $OUT/front_end_metrics.csv
for SPLIT in heldout dev; do
  [ -f $OUT/paired_${SPLIT}_$STEPS.json ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml \
    --split $SPLIT --samples 200 --export plain=$PLAIN --export front_end=$RUN/distill/exports/step-$STEP.safetensors \
    --out $OUT/paired_${SPLIT}_$STEPS.json
done
[ -f $OUT/eval_front_end_$STEPS/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $RUN/distill/exports/step-$STEP.safetensors --out $OUT/eval_front_end_$STEPS
