#!/usr/bin/env bash
# two.sh's soup released (after gate_two.sh) over the release of a25cf19 (release_owned.sh), evaluated into
# release_eval_two/, the source of results.json then.
#   bash benchmarks/results/teacher_blocks/release_two.sh     # OUT_DIR=/tmp/x: pack there only (a check)
set -euo pipefail
exec bash "$(dirname "$0")/release_owned.sh" 2 two a25cf19 release_eval_two
