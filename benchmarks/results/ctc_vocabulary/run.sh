#!/usr/bin/env bash
# Characters or LLM tokens for the CTC read-out (issue 13): a fresh head of each vocabulary trained 500 steps x 16
# clips on the release's frozen CTC-layer states (the release's 31,000-row corpus), then read beside the release's
# own head on both unseen-voice sets and dev (WER, CER, paired WER gaps). ~45 min on 2 CPU cores.
#   bash benchmarks/results/ctc_vocabulary/run.sh      # skipped when its JSON is there
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/ctc_vocabulary
bash benchmarks/rebuild_data.sh   # the corpus the heads train on and both unseen-voice sets
RELEASED=$(bash benchmarks/release_at.sh 30830d9)
[ -f $OUT/release_30830d9.json ] || .venv/bin/python -m benchmarks.ctc_vocabulary \
  --config configs/student_hibari_morph.yaml --export "$RELEASED" --steps 500 --out $OUT/release_30830d9.json
