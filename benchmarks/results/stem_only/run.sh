#!/usr/bin/env bash
# Does the student read new voices better when its audio enters only through Whisper's frozen stem? (issue 13)
# The released student adds two paths into each audio token: its own strided convolution over the log-mel (learnt
# from the six training voices) and the teacher stem's projection. Arm "stem_only" starts from the release with the
# log-mel convolution's weights set to zero and kept there (its bias, a constant, stays), so the stem is the only
# way in; arm "continued" is the release itself. Both then train the release's stem-stage recipe (distillation +
# 0.5 x CTC, lr 1e-3, warm-up 20, stem projection at 10 x lr, the rest of the patch embedding frozen) for STEPS
# steps on the same clips, and are paired on the unseen-voice dev set (Kokoro's five speakers, ../unseen_voice_dev/:
# the set choices are made on) and on dev (the training voices, unseen texts).
#   bash benchmarks/results/stem_only/run.sh          # each step resumes or skips what is already written
#   STEPS=800 bash benchmarks/results/stem_only/run.sh  # continues both arms (the schedule stretches to the new end)
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/stem_only
RUNS=runs/speech
P=.venv/bin/python
STEPS=${STEPS:-400}
STEP=$(printf %06d "$STEPS")
RELEASE=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
INIT=$RUNS/stem_only_init.safetensors
[ -f $INIT ] || $P - "$RELEASE" "$INIT" <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open(sys.argv[1], "pt") as f:
    tensors = {k: f.get_tensor(k) for k in f.keys()}
    metadata = f.metadata()
tensors["patch_embedding.patchify.weight"].zero_()  # the log-mel path closed; the stem's projection is the way in
save_file(tensors, sys.argv[2], metadata=metadata)
PY
for ARM in stem_only continued; do
  START=$INIT
  [ $ARM = continued ] && START=$RELEASE
  .venv/bin/aura train --config configs/student.yaml --stage distill --resume --set train.init_from=$START \
    --set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0 \
    --set student.ctc_weight=0.5 --set paths.checkpoints=$RUNS/checkpoints_$ARM --set train.max_steps=$STEPS \
    --set train.lr=1e-3 --set train.warmup_steps=20 --set train.checkpoint_every=100 --set train.eval_samples=120 \
    --set train.eval_every=$STEPS
  cp $RUNS/checkpoints_$ARM/distill/eval.csv $OUT/${ARM}_eval.csv
  cp $RUNS/checkpoints_$ARM/distill/metrics.csv $OUT/${ARM}_metrics.csv
done
EXPORTS=""  # paired with the first, "continued"
for ARM in continued stem_only; do EXPORTS="$EXPORTS --export $ARM=$RUNS/checkpoints_$ARM/distill/exports/step-$STEP.safetensors"; done
EXPORTS="$EXPORTS --export release=$RELEASE"
F=$OUT/paired_unseen_$STEPS.json
# shellcheck disable=SC2086
[ -f $F ] || $P -m benchmarks.paired_ctc --config configs/student.yaml --shards $RUNS/unseen_voice_dev/shards \
  --split dev --samples 1000 $EXPORTS --out $F
F=$OUT/paired_dev_$STEPS.json
# shellcheck disable=SC2086
[ -f $F ] || $P -m benchmarks.paired_ctc --config configs/student.yaml --split dev --samples 200 $EXPORTS --out $F
