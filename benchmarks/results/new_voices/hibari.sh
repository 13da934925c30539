#!/usr/bin/env bash
# The clean-licence arm (issue 13): the corpus grown by the same 3,000 rows, all in Hibari's "heart"
# (configs/student_hibari.yaml, its own workdir runs/hibari, started as a copy of runs/speech), then run.sh's stage
# (the release's broad-warp recipe from e61da57, seed 3, 800 steps x 16 at lr 3e-4). Paired with the release and
# with run.sh's Hibari + DECtalk stage on the unseen-voice set (the gate), dev and, reported only, held-out.
#   bash benchmarks/results/new_voices/hibari.sh     # after run.sh; resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/new_voices
CONFIG=configs/student_hibari.yaml
bash benchmarks/grow_corpus.sh runs/hibari $CONFIG
cp runs/hibari/corpus/summary.md $OUT/hibari_corpus_summary.md
RUN=runs/hibari/checkpoints_broad
CONFIG=$CONFIG bash benchmarks/voice_stage.sh $RUN 3 e61da57 "${BROAD_SHIFT[@]}"
cp $RUN/distill/eval.csv $OUT/hibari_eval.csv
cp $RUN/distill/metrics.csv $OUT/hibari_metrics.csv
STEP=distill/exports/step-000800.safetensors
EXPORTS="--export release=$(bash benchmarks/release_at.sh e61da57) --export new_voices=runs/voices/checkpoints_broad/$STEP --export hibari=$RUN/$STEP"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen_hibari.json $EXPORTS --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev_hibari.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout_hibari.json $EXPORTS --split heldout --samples 200   # reported only
