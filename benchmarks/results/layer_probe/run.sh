#!/usr/bin/env bash
# Where a new voice's sounds are lost (issue 13): fresh letter probes (CharacterCTCHead, 500 steps x 16, side by side on
# the same clips) on the release's frozen states at depths 0 (the patch embedding), 2, 4, 6 and 8 (the CTC layer) and
# on its teacher's four encoder layers, each read on both unseen-voice sets and dev: `python -m benchmarks.layer_probe`.
#   bash benchmarks/results/layer_probe/run.sh     # skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/layer_probe
bash benchmarks/rebuild_data.sh   # the corpus the probes train on and both unseen-voice sets
RELEASED=$(bash benchmarks/release_at.sh 30830d9)
[ -f $OUT/release_30830d9.json ] || .venv/bin/python -m benchmarks.layer_probe \
  --config configs/student_hibari_morph.yaml --export "$RELEASED" --steps 500 --out $OUT/release_30830d9.json
# The teacher again, each channel standardised with the store's statistics (--standardise-teacher).
[ -f $OUT/teacher_standardised.json ] || .venv/bin/python -m benchmarks.layer_probe --standardise-teacher \
  --config configs/student_hibari_morph.yaml --export "$RELEASED" --student-layers "" --steps 500 \
  --out $OUT/teacher_standardised.json
