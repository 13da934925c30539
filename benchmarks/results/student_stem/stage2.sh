#!/usr/bin/env bash
# The release's stage 2 after the stem stage (issue 13), into RUN: LM loss + 0.3 x distillation + 0.3 x CTC,
# 150 steps x 16 = 2,400 examples, lr 1e-3, from the stem stage's 400-step export (STAGE1=...); extra --set
# arguments change one setting (stage2_variants.sh). Resumes; copies nothing.
#   bash benchmarks/results/student_stem/stage2.sh RUN_DIR [--set key=value ...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 RUN_DIR [--set key=value ...]" >&2; exit 2; }
RUN=$1
shift
cd "$(dirname "$0")/../../.."
STAGE1=${STAGE1:-runs/speech/checkpoints_teacher_stem_frozen_patch/distill/exports/step-000400.safetensors}
.venv/bin/aura train --config configs/student.yaml --stage tasks --resume --set train.tasks_init_from=$STAGE1 \
  --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
  --set student.ctc_weight=0.5 --set train.tasks_ctc_weight=0.3 --set paths.checkpoints=$RUN \
  --set train.tasks_max_steps=150 --set train.checkpoint_every=50 --set train.eval_samples=120 \
  --set train.eval_every=150 "$@"
