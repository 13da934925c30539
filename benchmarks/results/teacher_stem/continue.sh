#!/usr/bin/env bash
# Does the stem's gain on the new voice grow with training? The "stem" arm of run.sh continued to STEPS (default
# 800; the schedule stretches to the new end, as stage1_arm.sh's), then read side by side with the plain arm and
# the stem arm at 400 steps, paired on the same 200 held-out and 200 dev clips. Resumes when run again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_stem
STEPS=${STEPS:-800}
STEP=$(printf %06d "$STEPS")
RUN=runs/speech/checkpoints_teacher_stem
.venv/bin/aura train --config configs/student.yaml --stage distill --resume \
  --set train.init_from="$(bash benchmarks/release_at.sh 535718a)" \
  --set student.ctc_weight=0.5 --set paths.checkpoints=$RUN --set train.max_steps=$STEPS --set train.lr=1e-3 \
  --set train.warmup_steps=20 --set train.checkpoint_every=100 --set train.eval_samples=120 \
  --set train.eval_every=$STEPS --set student.teacher_stem=true --set train.lr_scale_front_end=10
cp $RUN/distill/eval.csv $OUT/stem_eval.csv
cp $RUN/distill/metrics.csv $OUT/stem_metrics.csv
for SPLIT in heldout dev; do
  [ -f $OUT/paired_${SPLIT}_stem_$STEPS.json ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml \
    --split $SPLIT --samples 200 --export plain_400=runs/speech/checkpoints_plain22k/distill/exports/step-000400.safetensors \
    --export stem_400=$RUN/distill/exports/step-000400.safetensors --export stem_$STEPS=$RUN/distill/exports/step-$STEP.safetensors \
    --out $OUT/paired_${SPLIT}_stem_$STEPS.json
done
