#!/usr/bin/env bash
# A tuning set of voices no training row has (issue 13): the 22,000-row corpus's dev rows (texts and facts never
# trained on) spoken again by Kokoro-82M's five speakers (python -m benchmarks.unseen_voice_dev), and on it the
# stage-1 arms of ../teacher_stem/ at every saved step (100 .. 800): plain, stem, stem with the patch embedding
# frozen, paired on the same clips. The choice of arm and step is made here, not on held-out; held-out (pico:en-GB)
# is paired the same way afterwards at 100 steps, to report and to see whether this set tracks it (the 400- and
# 800-step held-out pairs are ../teacher_stem/'s; the other steps' were lost with the machine before they were written).
#   bash benchmarks/results/unseen_voice_dev/run.sh      # each step skips what is already written
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/unseen_voice_dev
SET=runs/speech/unseen_voice_dev
P=.venv/bin/python
[ -f $SET/shards/manifest.parquet ] || $P -m benchmarks.unseen_voice_dev --config configs/student.yaml --out $SET
arms() {  # the three arms' exports at step $1
  local S; S=$(printf %06d "$1")
  echo --export plain=runs/speech/checkpoints_plain22k/distill/exports/step-$S.safetensors \
    --export stem=runs/speech/checkpoints_teacher_stem/distill/exports/step-$S.safetensors \
    --export stem_frozen_patch=runs/speech/checkpoints_teacher_stem_frozen_patch/distill/exports/step-$S.safetensors
}
for SPLIT in unseen heldout; do
  STEPS="100 200 300 400 500 600 700 800"
  [ $SPLIT = heldout ] && STEPS=100
  for STEP in $STEPS; do
    F=$OUT/paired_${SPLIT}_$STEP.json
    [ -f $F ] && continue
    if [ $SPLIT = unseen ]; then WHERE="--shards $SET/shards --split dev --samples 1000"; else WHERE="--split heldout --samples 200"; fi
    # shellcheck disable=SC2046
    $P -m benchmarks.paired_ctc --config configs/student.yaml $WHERE $(arms $STEP) --out $F
  done
done
