#!/usr/bin/env bash
# The released student as it was at a commit, for scripts that must start from (or compare with) the release of
# their day after it was replaced: prints the path of a copy under runs/releases/ (taken from git once).
#   INIT=$(bash benchmarks/release_at.sh 535718a)   # the release of 2026-12-03 (before the stem student)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 COMMIT" >&2; exit 2; }
cd "$(dirname "$0")/.."
FILE=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
OUT=runs/releases/$1.safetensors
if [ ! -f "$OUT" ]; then
  mkdir -p runs/releases
  git show "$1:$FILE" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
