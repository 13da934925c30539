#!/usr/bin/env bash
# `python -m benchmarks.student_soup` (the equal-weight average of the exports given) into OUT unless that file is
# there: the results scripts resume by skipping what is done (as benchmarks/pair_once.sh does for pairings).
#   bash benchmarks/soup_once.sh OUT.safetensors A.safetensors B.safetensors [C.safetensors ...]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OUT EXPORT EXPORT [EXPORT ...]" >&2; exit 2; }
OUT=$1
shift
cd "$(dirname "$0")/.."
[ -f "$OUT" ] || .venv/bin/python -m benchmarks.student_soup "$@" --out "$OUT"
