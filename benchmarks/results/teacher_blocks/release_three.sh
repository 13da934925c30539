#!/usr/bin/env bash
# three.sh's soup released (after gate_three.sh, if it passed the rule in README.md) over the release of 9b11afb
# (release_owned.sh), evaluated into release_eval_three/, the source of results.json.
#   bash benchmarks/results/teacher_blocks/release_three.sh     # OUT_DIR=/tmp/x: pack there only (a check)
set -euo pipefail
exec bash "$(dirname "$0")/release_owned.sh" 3 three 9b11afb release_eval_three
