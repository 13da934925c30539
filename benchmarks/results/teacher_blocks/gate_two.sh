#!/usr/bin/env bash
# The release gate for two.sh's soup (the two stages with two of Whisper's layers owned) beside the release it would
# replace (a25cf19, the one-layer soup): ../../release_gate.sh's measurements.
#   bash benchmarks/results/teacher_blocks/gate_two.sh     # after two.sh, if its soup passes the rule; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_blocks/gate_two
bash benchmarks/release_gate.sh $OUT a25cf19 runs/teacher_blocks/soup_b2_owned.safetensors
