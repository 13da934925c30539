#!/usr/bin/env bash
# The measurement of README.md again on the release with three of Whisper's layers in its front end (19877f2, the
# release of 2026-12-08; the first was made on the stem student of 2026-12-03): the same read-out (600 steps, seed 0,
# trained on the teacher's layer 4 alone, so the same weights whichever student it then reads), reading the teacher's
# states and the student's prediction of them on 200 dev and 200 held-out clips, and the student's per-layer cosines
# on both splits. The feature store is the one configs/student.yaml names (rebuilt by ../../rebuild_data.sh).
#   bash benchmarks/results/teacher_readout/release_three.sh     # skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/teacher_readout
EXPORT=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
[ -f $OUT/release_three.json ] || .venv/bin/python -m benchmarks.teacher_readout --config configs/student.yaml \
  --steps 600 --samples 200 --export $EXPORT --out $OUT/release_three.json
for SPLIT in dev heldout; do
  [ -f $OUT/probe_release_three_$SPLIT.json ] || .venv/bin/aura probe --config configs/student.yaml --export $EXPORT \
    --split $SPLIT --max-samples 80 --out $OUT/probe_release_three_$SPLIT.json
done
