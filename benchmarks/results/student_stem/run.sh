#!/usr/bin/env bash
# A release candidate with Whisper's conv stem (issue 13), chosen on the unseen-voice dev set, not on held-out
# (../unseen_voice_dev/): the stage-1 arm of ../teacher_stem/ (stem, patch embedding frozen) at the step where that
# set read best, then the released student's last stage again (../student_ctc_stage2/): stage 2 with LM loss
# + 0.3 x distillation + 0.3 x CTC, 150 steps x 16 = 2,400 examples, lr 1e-3, so that its generated answers listen.
# Then: the gate (paired with the released student on the unseen-voice set: it must read it better), both read-outs
# and the listening test on dev, and `aura eval` (CTC read-out, 200 + 200 held-out clips).
#   STAGE1=runs/.../step-000400.safetensors bash benchmarks/results/student_stem/run.sh   # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
P=.venv/bin/python
OUT=benchmarks/results/student_stem
RELEASED=$(bash benchmarks/release_at.sh 535718a)  # the release this candidate was measured against (2026-12-03)
STAGE1=${STAGE1:-runs/speech/checkpoints_teacher_stem_frozen_patch/distill/exports/step-000400.safetensors}
RUN=runs/speech/checkpoints_stem_release
EXPORT=$RUN/tasks/export/student.safetensors
STAGE1=$STAGE1 bash $OUT/stage2.sh $RUN
cp $RUN/tasks/eval.csv $OUT/tasks_eval.csv
cp $RUN/tasks/metrics.csv $OUT/tasks_metrics.csv
[ -f $OUT/paired_unseen.json ] || $P -m benchmarks.paired_ctc --config configs/student.yaml \
  --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 \
  --export released=$RELEASED --export stage1=$STAGE1 --export candidate=$EXPORT --out $OUT/paired_unseen.json
[ -f $OUT/readout_dev.json ] || $P -m benchmarks.readout_dev --config configs/student.yaml --export $EXPORT \
  --samples 60 --out $OUT/readout_dev.json
[ -f $OUT/eval/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $EXPORT --out $OUT/eval
# Reported, not chosen on: the same pairing on 200 held-out clips (voice pico:en-GB).
[ -f $OUT/paired_heldout.json ] || $P -m benchmarks.paired_ctc --config configs/student.yaml --split heldout \
  --samples 200 --export released=$RELEASED --export stage1=$STAGE1 --export candidate=$EXPORT --out $OUT/paired_heldout.json
