#!/usr/bin/env bash
# The CTC read-out (issue 13): the released student gets a CTC head (stage 1 again from its parts, distillation +
# 0.5 x CTC over the LLM's own tokens at layer 8), and is evaluated through the CTC head (`aura_ctc`; spoken QA
# answered from that transcript by the frozen LLM) on the held-out split, and both read-outs on dev. The data is configs/speech.yaml's (see ../student_continued/run.sh to rebuild it).
# Every step resumes or skips finished work when run again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/student_ctc_readout
RELEASED=$(bash benchmarks/release_at.sh 026787a)  # the release of 2026-12-02 it started from
RUN=runs/speech/checkpoints_ctc
STEPS=${STEPS:-1200}
$A train --config configs/student.yaml --stage distill --resume --set train.init_from=$RELEASED \
  --set student.ctc_weight=0.5 --set paths.checkpoints=$RUN --set train.max_steps=$STEPS --set train.lr=1e-3 \
  --set train.checkpoint_every=100 --set train.eval_samples=120 --set train.eval_every=300
cp $RUN/distill/eval.csv $OUT/distill_eval.csv
cp $RUN/distill/metrics.csv $OUT/distill_metrics.csv
$A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 --train-bridge never --no-cosine \
  --export $RUN/distill/export/student.safetensors --out $OUT/eval
.venv/bin/python -m benchmarks.readout_dev --config configs/student.yaml --export $RUN/distill/export/student.safetensors \
  --samples 60 --out $OUT/readout_dev.json          # both read-outs on dev: how --read-out auto was chosen
# Released on 2026-12-03 with pipeline.released.pack_release(<export>, RELEASE_DIR, "bundled:smollm2-135m-instruct", facts).
