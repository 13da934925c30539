#!/usr/bin/env bash
# The rest of the release gate for hibari.sh's stage beside the release it would replace (e61da57): both dev
# read-outs, the probe, the listening test and the five unseen speakers (../../release_gate.sh), and the release's
# own dev read-outs on the same clips (readout_dev is not paired).
#   bash benchmarks/results/new_voices/gate_hibari.sh     # after hibari.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/new_voices/gate_hibari
bash benchmarks/release_gate.sh $OUT e61da57 runs/hibari/checkpoints_broad/distill/exports/step-000800.safetensors
[ -f $OUT/readout_dev_release.json ] || .venv/bin/python -m benchmarks.readout_dev --config configs/student.yaml \
  --export "$(bash benchmarks/release_at.sh e61da57)" --samples 60 --out $OUT/readout_dev_release.json
