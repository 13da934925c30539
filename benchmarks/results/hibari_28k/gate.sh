#!/usr/bin/env bash
# The release gate for run.sh's stage (the Hibari corpus grown to 28,000 rows) beside the release it would replace
# (0dea27e): both dev read-outs, the probe, the listening test and the five unseen speakers and
# the release's own dev read-outs on the same clips (../../release_gate.sh).
#   bash benchmarks/results/hibari_28k/gate.sh     # after run.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/hibari_28k/gate
bash benchmarks/release_gate.sh $OUT 0dea27e runs/hibari_28k/checkpoints_equalizer/distill/exports/step-000800.safetensors
