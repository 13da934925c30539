#!/usr/bin/env bash
# The release gate for owned.sh's soup (the morph and foreign-voices stages with Whisper's first layer owned by the
# student) beside the release it would replace (30830d9): both dev read-outs, the probe, the listening test and the
# five unseen speakers (../../release_gate.sh), and the release's own dev read-outs on the same clips.
#   bash benchmarks/results/teacher_blocks/gate.sh     # after owned.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_blocks/gate
bash benchmarks/release_gate.sh $OUT 30830d9 runs/teacher_blocks/soup_b1_owned.safetensors
[ -f $OUT/readout_dev_release.json ] || .venv/bin/python -m benchmarks.readout_dev \
  --config configs/student.yaml --export "$(bash benchmarks/release_at.sh 30830d9)" --samples 60 \
  --out $OUT/readout_dev_release.json
