#!/usr/bin/env bash
# The rest of the release gate for soups.sh's two-way soup beside the release it would replace (fd0397c): both dev
# read-outs, the probe, the listening test and the five unseen speakers and the release's
# own dev read-outs on the same clips (../../release_gate.sh; readout_dev is not paired).
#   bash benchmarks/results/soup_broad/gate.sh     # after candidate.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/soup_broad/gate
bash benchmarks/release_gate.sh $OUT fd0397c runs/soups/equalizer_broad.safetensors
