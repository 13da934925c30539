#!/usr/bin/env bash
# The dataset-growth path at size: the 22,000-utterance corpus grows by 2,000 utterances; corpus, ingest and
# precompute each touch only the new rows/shards. Run from the repository root after the first build:
#   aura corpus --config configs/speech.yaml && aura ingest runs/speech/corpus/manifest.jsonl --config configs/speech.yaml \
#     && aura precompute --config configs/speech.yaml
set -euo pipefail
export OMP_NUM_THREADS=1
grow=(--config configs/speech.yaml --set corpus.num_utterances=24000)
time .venv/bin/aura corpus "${grow[@]}"
time .venv/bin/aura ingest runs/speech/corpus/manifest.jsonl "${grow[@]}"
time .venv/bin/aura precompute "${grow[@]}"
