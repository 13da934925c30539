#!/usr/bin/env bash
# The release gate for soup.sh's student (the average of the morph and foreign-voices stages) beside the release it would
# replace (73eb500): both dev read-outs, the probe, the listening test and the five unseen speakers
# and the release's own dev read-outs on the same clips (../../release_gate.sh).
#   bash benchmarks/results/hibari_morph/gate.sh     # after soup.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/hibari_morph/gate
bash benchmarks/release_gate.sh $OUT 73eb500 runs/hibari_morph/soup_morph_foreign.safetensors
