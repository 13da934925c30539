#!/usr/bin/env bash
# The rest of the release gate for candidate.sh's student (issue 13), as ctc_balance/release_800.sh did for the
# release it would replace: both read-outs on dev, the probe and the listening test (dev 120 clips and the 8 shipped
# ones, paired with the release), then `aura eval` (CTC read-out, 200 + 200 held-out clips; run it on quiet cores,
# its latency is reported). The pairings on the unseen-voice set, dev and held-out are candidate.sh's.
#   bash benchmarks/results/high_pitch/release_gate.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
P=.venv/bin/python
OUT=benchmarks/results/high_pitch/candidate
RELEASED=$(bash benchmarks/release_at.sh 2229f82)
EXPORT=runs/speech/checkpoints_high_pitch_candidate/distill/exports/step-000800.safetensors
EXAMPLES=pipeline/released/aura-smollm2-135m-whisper-tiny-en/examples
[ -f $OUT/readout_dev.json ] || $P -m benchmarks.readout_dev --config configs/student.yaml --export $EXPORT \
  --samples 60 --out $OUT/readout_dev.json
[ -f $OUT/probe_dev.json ] || $A probe --config configs/student.yaml --export $EXPORT --split dev \
  --max-samples 120 --out $OUT/probe_dev.json
[ -f $OUT/listening_dev.json ] || $P -m benchmarks.listening --config configs/student.yaml --samples 120 \
  --export release=$RELEASED --export candidate=$EXPORT --out $OUT/listening_dev.json
[ -f $OUT/listening_shipped.json ] || $P -m benchmarks.listening --config configs/student.yaml --examples $EXAMPLES \
  --export release=$RELEASED --export candidate=$EXPORT --out $OUT/listening_shipped.json
[ "${SKIP_EVAL:-0}" = 1 ] || [ -f $OUT/eval/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc \
  --max-samples 400 --train-bridge never --no-cosine --export $EXPORT --out $OUT/eval
