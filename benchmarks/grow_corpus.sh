#!/usr/bin/env bash
# A grown corpus in its own workdir (configs/student_new_voices.yaml, configs/student_hibari.yaml, ...): WORKDIR starts
# as a copy of FROM (default runs/speech, the release's 22,000 rows as rendered, ingested and precomputed, so the
# recipes trained on FROM keep their rows), then CONFIG's new rows are rendered, ingested and their teacher features
# stored. Skips what is done. The copy is of hard links (cp -al; a plain copy where FROM is on another file system):
# the two workdirs share the files they have in common and take no second copy's disk (~13 GB for runs/speech), which
# is safe because every file of a corpus, its shards and its store is written once, as a new file renamed into place,
# never rewritten in place (tests/benchmarks/test_grow_corpus.py grows a linked copy and checks its source unchanged).
#   bash benchmarks/grow_corpus.sh runs/hibari configs/student_hibari.yaml
#   bash benchmarks/grow_corpus.sh runs/hibari_28k configs/student_hibari_28k.yaml runs/hibari
set -euo pipefail
[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: $0 WORKDIR CONFIG [FROM]" >&2; exit 2; }
cd "$(dirname "$0")/.."
FROM=${3:-runs/speech}
if [ ! -d "$1/store.zarr" ]; then
  rm -rf "$1.partial" && mkdir -p "$1.partial"
  if ! cp -al "$FROM/corpus" "$FROM/shards" "$FROM/store.zarr" "$1.partial/" 2>/dev/null; then
    rm -rf "$1.partial" && mkdir -p "$1.partial"
    cp -a "$FROM/corpus" "$FROM/shards" "$FROM/store.zarr" "$1.partial/"
  fi
  mv "$1.partial" "$1"  # a copy cut short is never taken for a workdir
fi
.venv/bin/aura corpus --config "$2"
.venv/bin/aura ingest "$1/corpus/manifest.jsonl" --config "$2"
.venv/bin/aura precompute --config "$2"
