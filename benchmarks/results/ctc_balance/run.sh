#!/usr/bin/env bash
# Does the released student read new voices better when its distillation term is not drowned out by CTC (issue 13)?
# The release's stem stage trained distillation + 0.5 x CTC; on the adaptation runs the gradient of that mix was ~45x
# the distillation's alone (../voice_adaptation/grad_norm_ctc_0.5.csv), so Adam followed CTC. Here the released
# student is continued with its own stem-stage recipe (../teacher_stem/frozen_patch.sh: stem projection at 10 x lr,
# patch convolution frozen, lr 1e-3, warm-up 20, 16 clips a step, the 22,000-row corpus) for 400 steps, once with
# CTC at 0.5 (the control: what more steps alone give) and once per smaller weight, then paired with the release on
# the unseen-voice dev set (the selection set), on dev (training voices) and, reported only, held-out.
#   bash benchmarks/results/ctc_balance/run.sh            # resumes; skips what is done
#   WEIGHTS="0.5 0.1" bash benchmarks/results/ctc_balance/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/ctc_balance
P=.venv/bin/python
RELEASED=$(bash benchmarks/release_at.sh 2925e8b)  # the stem student, released 2026-12-04
STEPS=400
WEIGHTS=${WEIGHTS:-0.5 0.05 0.02}
[ -f runs/speech/unseen_voice_dev/shards/manifest.parquet ] || $P -m benchmarks.unseen_voice_dev \
  --config configs/student.yaml --out runs/speech/unseen_voice_dev
EXPORTS="--export release=$RELEASED"
for W in $WEIGHTS; do
  RUN=runs/speech/checkpoints_ctc_balance_$W
  # PLAIN_RUN=RUN: no pairing inside the arm script; the pairings below hold every arm at once.
  INIT=$RELEASED PLAIN_RUN=$RUN AURA_EVAL=0 STEPS=$STEPS bash benchmarks/stage1_arm.sh $OUT ctc_$W $RUN \
    --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
    --set student.ctc_weight=$W
  EXPORTS="$EXPORTS --export ctc_$W=$RUN/distill/exports/step-$(printf %06d $STEPS).safetensors"
done
TAG=$(echo $WEIGHTS | tr ' ' _)
pair() {  # NAME, then paired_ctc's arguments
  local f=$OUT/paired_$1_$TAG.json
  shift
  # shellcheck disable=SC2086
  bash benchmarks/pair_once.sh $f $EXPORTS "$@"
}
pair unseen --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
pair dev --split dev --samples 200
pair heldout --split heldout --samples 200   # reported, never chosen on
$P -m benchmarks.paired_tradeoff --gain $OUT/paired_unseen_$TAG.json --cost $OUT/paired_dev_$TAG.json \
  --gain-name "unseen voices (Kokoro)" --cost-name "training voices (dev)" --out $OUT/tradeoff.png
