#!/usr/bin/env bash
# The release gate for three.sh's soup (the two stages with three of Whisper's layers owned) beside the release it
# would replace (9b11afb, the two-layer soup): ../../release_gate.sh's measurements.
#   bash benchmarks/results/teacher_blocks/gate_three.sh     # after three.sh, if its soup passes the rule; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash benchmarks/release_gate.sh benchmarks/results/teacher_blocks/gate_three 9b11afb \
  runs/teacher_blocks/soup_b3_owned.safetensors
