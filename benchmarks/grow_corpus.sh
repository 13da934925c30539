#!/usr/bin/env bash
# A grown corpus in its own workdir (configs/student_new_voices.yaml, configs/student_hibari.yaml): WORKDIR starts as
# a copy of runs/speech (the release's 22,000 rows as rendered, ingested and precomputed, so the release's own recipe
# keeps them), then CONFIG's new rows are rendered, ingested and their teacher features stored. Skips what is done.
#   bash benchmarks/grow_corpus.sh runs/hibari configs/student_hibari.yaml
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 WORKDIR CONFIG" >&2; exit 2; }
cd "$(dirname "$0")/.."
if [ ! -d "$1/store.zarr" ]; then
  mkdir -p "$1"
  cp -a runs/speech/corpus runs/speech/shards runs/speech/store.zarr "$1/"
fi
.venv/bin/aura corpus --config "$2"
.venv/bin/aura ingest "$1/corpus/manifest.jsonl" --config "$2"
.venv/bin/aura precompute --config "$2"
