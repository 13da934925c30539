#!/usr/bin/env bash
# One voice stage from a released student, the recipe of every release ingredient since 2026-12-06: 800 steps x 16
# at lr 3e-4 (warm-up 20), distillation + 0.05 x CTC, the stem (its projection at 10 x lr, the patch convolution
# kept), half of the clips shifted in voice; the caller's --set options (the shift's ranges, the equalizer) come
# last. START is the commit whose release it starts from (2229f82, the balanced student, for the stages of
# ../results/equalizer and ../results/soup_broad). Resumes from RUN_DIR's last checkpoint. The data is
# configs/student.yaml's unless CONFIG names another config (e.g. a grown corpus).
#   bash benchmarks/voice_stage.sh RUN_DIR SEED START --set "train.speaker_pitch_range=[0.7,2.6]" ...
# (the named option sets of the results scripts: benchmarks/voice_recipes.sh)
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 RUN_DIR SEED START_COMMIT [--set key=value ...]" >&2; exit 2; }
RUN=$1
SEED=$2
START=$3
shift 3
cd "$(dirname "$0")/.."
.venv/bin/aura train --config "${CONFIG:-configs/student.yaml}" --stage distill --resume \
  --set train.init_from="$(bash benchmarks/release_at.sh "$START")" --set train.seed="$SEED" \
  --set paths.checkpoints="$RUN" --set train.max_steps=800 --set train.lr=3e-4 --set train.warmup_steps=20 \
  --set train.checkpoint_every=100 --set train.eval_samples=120 --set train.eval_every=800 \
  --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
  --set student.ctc_weight=0.05 --set train.speaker_shift=0.5 "$@"
