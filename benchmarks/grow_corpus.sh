#!/usr/bin/env bash
# A grown corpus in its own workdir (configs/student_new_voices.yaml, configs/student_hibari.yaml, ...): WORKDIR starts
# as a copy of FROM (default runs/speech, the release's 22,000 rows as rendered, ingested and precomputed, so the
# recipes trained on FROM keep their rows), then CONFIG's new rows are rendered, ingested and their teacher features
# stored. Skips what is done.
#   bash benchmarks/grow_corpus.sh runs/hibari configs/student_hibari.yaml
#   bash benchmarks/grow_corpus.sh runs/hibari_28k configs/student_hibari_28k.yaml runs/hibari
set -euo pipefail
[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: $0 WORKDIR CONFIG [FROM]" >&2; exit 2; }
cd "$(dirname "$0")/.."
FROM=${3:-runs/speech}
if [ ! -d "$1/store.zarr" ]; then
  mkdir -p "$1.partial"
  cp -a "$FROM/corpus" "$FROM/shards" "$FROM/store.zarr" "$1.partial/"
  mv "$1.partial" "$1"  # a copy cut short is never taken for a workdir
fi
.venv/bin/aura corpus --config "$2"
.venv/bin/aura ingest "$1/corpus/manifest.jsonl" --config "$2"
.venv/bin/aura precompute --config "$2"
