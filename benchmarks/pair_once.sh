#!/usr/bin/env bash
# `python -m benchmarks.paired_ctc` (configs/student.yaml) into OUT_JSON unless that file is there: the results
# scripts resume by skipping what is done.
#   bash benchmarks/pair_once.sh OUT_JSON --export release=... --export candidate=... --split dev --samples 200
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT_JSON [paired_ctc arguments]" >&2; exit 2; }
OUT=$1
shift
cd "$(dirname "$0")/.."
[ -f "$OUT" ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml --out "$OUT" "$@"
