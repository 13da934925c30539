#!/usr/bin/env bash
# The release candidate of more.sh (issue 13): the 0.05 arm at 800 steps, with no stage 2 after it (both stage 2s
# measured took the arm's reading of new voices back). It passed the gate of release.sh on the unseen-voice set
# (more.sh's release_0.05/paired_unseen_more.json); here: both read-outs on dev, `aura eval` (CTC read-out,
# 200 + 200 held-out clips), the listening test and probe on dev, and, reported only, the pairing on held-out.
#   bash benchmarks/results/ctc_balance/release_800.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
P=.venv/bin/python
OUT=benchmarks/results/ctc_balance/release_800
mkdir -p $OUT
RELEASED=$(bash benchmarks/release_at.sh 2925e8b)
EXPORT=runs/speech/checkpoints_ctc_balance_0.05/distill/exports/step-000800.safetensors
[ -f $OUT/readout_dev.json ] || $P -m benchmarks.readout_dev --config configs/student.yaml --export $EXPORT \
  --samples 60 --out $OUT/readout_dev.json
[ -f $OUT/eval/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $EXPORT --out $OUT/eval
bash benchmarks/pair_once.sh $OUT/paired_heldout.json --split heldout --samples 200 --export release=$RELEASED \
  --export candidate=$EXPORT
[ -f $OUT/probe_dev.json ] || $A probe --config configs/student.yaml --export $EXPORT --split dev \
  --max-samples 120 --out $OUT/probe_dev.json
# the generated answers' listening, paired with the release on the same clips: 120 dev clips and the 8 shipped ones
EXAMPLES=pipeline/released/aura-smollm2-135m-whisper-tiny-en/examples
[ -f $OUT/listening_dev.json ] || $P -m benchmarks.listening --config configs/student.yaml --samples 120 \
  --export release=$RELEASED --export candidate=$EXPORT --out $OUT/listening_dev.json
[ -f $OUT/listening_shipped.json ] || $P -m benchmarks.listening --config configs/student.yaml --examples $EXAMPLES \
  --export release=$RELEASED --export candidate=$EXPORT --out $OUT/listening_shipped.json
