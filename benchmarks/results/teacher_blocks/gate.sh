#!/usr/bin/env bash
# The release gate for owned.sh's soup (the morph and foreign-voices stages with Whisper's first layer owned by the
# student) beside the release it would replace (30830d9): both dev read-outs, the probe, the listening test and the
# five unseen speakers and the release's own dev read-outs on the same clips (../../release_gate.sh).
#   bash benchmarks/results/teacher_blocks/gate.sh     # after owned.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_blocks/gate
bash benchmarks/release_gate.sh $OUT 30830d9 runs/teacher_blocks/soup_b1_owned.safetensors
