#!/usr/bin/env bash
# Stage 2 above the CTC layer (issue 13): every stage 2 so far cost the CTC read-out on new voices, because its LM loss
# reshapes the LoRA of layers 1-8 that the CTC head reads. Here the released student (2229f82) gets LoRA on layers
# 9-16 too (starting at zero) and a stage 2 that trains only those (train.tasks_frozen_layers=8: the patch
# embedding and layers 1-8 keep the release's weights, so its CTC read-out cannot change), on the LM loss alone,
# 300 steps x 16, lr 1e-3. Measured against the release on dev (never held-out): both read-outs (readout_dev) and
# the listening test of the generated answers (benchmarks.listening).
#   bash benchmarks/results/stage2_above_ctc/run.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=.venv/bin/python
OUT=benchmarks/results/stage2_above_ctc
RELEASED=$(bash benchmarks/release_at.sh 2229f82)
RUN=runs/speech/checkpoints_stage2_above_ctc
EXPORT=$RUN/tasks/export/student.safetensors
STEPS=${STEPS:-300}
.venv/bin/aura train --config configs/student.yaml --stage tasks --resume --set train.tasks_init_from=$RELEASED \
  --set student.teacher_stem=true --set student.lora_layers=16 --set train.tasks_frozen_layers=8 \
  --set train.distill_weight=0 --set train.tasks_ctc_weight=0 --set paths.checkpoints=$RUN \
  --set train.tasks_max_steps=$STEPS --set train.checkpoint_every=50 --set train.eval_samples=120 \
  --set train.eval_every=150
cp $RUN/tasks/eval.csv $OUT/tasks_eval.csv
cp $RUN/tasks/metrics.csv $OUT/tasks_metrics.csv
[ -f $OUT/readout_dev.json ] || $P -m benchmarks.readout_dev --config configs/student.yaml --export $EXPORT \
  --samples 60 --out $OUT/readout_dev.json
[ -f $OUT/listening_dev.json ] || $P -m benchmarks.listening --config configs/student.yaml --split dev \
  --samples 120 --export release=$RELEASED --export above_ctc=$EXPORT --out $OUT/listening_dev.json
