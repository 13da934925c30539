#!/usr/bin/env bash
# Does SpecAugment carry the student to a voice it never heard (issue 13)? Masked mel bands (2 of at most 20 of the
# 80 channels) and stretches (2 of at most 5 % of the clip) on the student's side, the teacher's targets unmasked,
# so no single band (a voice's formants, its pitch harmonics) can be relied on. One stage-1 arm from the released
# parts with the recipe of ../kokoro_voices/run.sh (distillation + 0.5 x CTC, lr 1e-3, warm-up 20, 16 clips a step,
# the 27,000-row corpus), compared with that arm (same budget and data, no masks) on the same clips, paired:
# held-out (voice pico:en-GB, never trained on) and dev.
# Every step resumes or skips finished work when run again; STEPS=1200 continues the run (the schedule stretches
# to the new end) and evaluates it again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/spec_augment
RELEASED=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
STEPS=${STEPS:-400}
RUN=runs/speech/checkpoints_specaug
STEP=$(printf %06d "$STEPS")
PLAIN=runs/speech/checkpoints_kokoro/distill/exports/step-$STEP.safetensors  # ../kokoro_voices
$A train --config configs/student.yaml --stage distill --resume --set train.init_from=$RELEASED \
  --set student.ctc_weight=0.5 --set paths.checkpoints=$RUN --set train.max_steps=$STEPS --set train.lr=1e-3 \
  --set train.warmup_steps=20 --set train.checkpoint_every=100 --set train.eval_samples=120 \
  --set train.eval_every=$STEPS --set train.spec_freq_masks=2 --set train.spec_freq_width=20 \
  --set train.spec_time_masks=2 --set train.spec_time_share=0.05
cp $RUN/distill/eval.csv $OUT/specaug_eval.csv
cp $RUN/distill/metrics.csv $OUT/specaug_metrics.csv
for SPLIT in heldout dev; do
  [ -f $OUT/paired_${SPLIT}_$STEPS.json ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml \
    --split $SPLIT --samples 200 --export plain=$PLAIN --export specaug=$RUN/distill/exports/step-$STEP.safetensors \
    --out $OUT/paired_${SPLIT}_$STEPS.json
done
[ -f $OUT/eval_specaug_$STEPS/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $RUN/distill/exports/step-$STEP.safetensors --out $OUT/eval_specaug_$STEPS
