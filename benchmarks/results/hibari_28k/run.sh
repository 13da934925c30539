#!/usr/bin/env bash
# More of the voice that helped (issue 13): the Hibari corpus (configs/student_hibari.yaml, 25,000 rows) grown by
# 3,000 more rows in Hibari's "heart" (configs/student_hibari_28k.yaml, workdir runs/hibari_28k, a copy of
# runs/hibari), then the release's own recipe (the equalizer stage: half of the clips raised, pitch x 1.2-2.6,
# formants x 1.0-1.2, half heard through the +-15-dB equalizer; 800 steps x 16 at lr 3e-4) from the release
# (0dea27e), seed 5. Paired with that release on the unseen-voice set (the gate), dev and, reported only, held-out.
#   bash benchmarks/results/hibari_28k/run.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/hibari_28k
CONFIG=configs/student_hibari_28k.yaml
bash benchmarks/grow_corpus.sh runs/hibari_28k $CONFIG runs/hibari
cp runs/hibari_28k/corpus/summary.md $OUT/corpus_summary.md
RUN=runs/hibari_28k/checkpoints_equalizer
CONFIG=$CONFIG bash benchmarks/voice_stage.sh $RUN 5 0dea27e \
  "${RELEASE_RECIPE[@]}"
cp $RUN/distill/eval.csv $OUT/equalizer_eval.csv
cp $RUN/distill/metrics.csv $OUT/equalizer_metrics.csv
EXPORTS="--export release=$(bash benchmarks/release_at.sh 0dea27e) --export hibari_28k=$RUN/distill/exports/step-000800.safetensors"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen.json $EXPORTS --shards runs/speech/unseen_voice_dev/shards \
  --split dev --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout.json $EXPORTS --split heldout --samples 200   # reported only
