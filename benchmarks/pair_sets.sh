#!/usr/bin/env bash
# The pairings of every candidate stage (`python -m benchmarks.paired_ctc`, CTC read-out, the first export the one the
# others are compared with): the two unseen-voice sets (the gate: the dev rows in Kokoro's five speakers; and DECtalk's
# nine speakers, an engine no student of the release line heard, since 2026-12-07), dev (the training voices) and
# held-out (reported, never chosen on), into OUT_DIR/paired_{unseen,dectalk,dev,heldout}SUFFIX.json; each skipped when
# its file is there (so the scripts of earlier sittings, run again, only add the DECtalk pairing). The students'
# transcripts are kept, so a student paired again is not re-read. The sets: benchmarks/rebuild_data.sh.
#   bash benchmarks/pair_sets.sh OUT_DIR SUFFIX --export release=... --export candidate=...   # SUFFIX may be ""
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 OUT_DIR SUFFIX --export NAME=PATH --export NAME=PATH ..." >&2; exit 2; }
OUT=$1
SUFFIX=$2
shift 2
cd "$(dirname "$0")/.."
for SET in runs/speech/unseen_voice_dev runs/speech/dectalk_dev; do
  [ -f $SET/shards/manifest.parquet ] ||
    { echo "$SET: not built (bash benchmarks/rebuild_data.sh builds it)" >&2; exit 1; }
done
bash benchmarks/pair_once.sh "$OUT/paired_unseen$SUFFIX.json" "$@" --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000
bash benchmarks/pair_once.sh "$OUT/paired_dectalk$SUFFIX.json" "$@" --shards runs/speech/dectalk_dev/shards \
  --split dev --samples 1000
bash benchmarks/pair_once.sh "$OUT/paired_dev$SUFFIX.json" "$@" --split dev --samples 200
bash benchmarks/pair_once.sh "$OUT/paired_heldout$SUFFIX.json" "$@" --split heldout --samples 200
