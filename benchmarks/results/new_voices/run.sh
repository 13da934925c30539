#!/usr/bin/env bash
# New training voices (issue 13): the corpus grown by 3,000 rows in Hibari's "heart" and DECtalk's nine speakers
# (configs/student_new_voices.yaml, its own workdir runs/voices, started as a copy of runs/speech), then the release's
# broad-warp recipe from the release (e61da57, seed 3, 800 steps x 16 at lr 3e-4) on it. Its control is the same
# recipe and seed on the 22,000 rows (../soup_continued/, "broad"). Both are paired with the release on the
# unseen-voice set (the gate), dev and, reported only, held-out (configs/student.yaml's splits: the same clips as
# every release's figures).
#   bash benchmarks/results/new_voices/run.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/new_voices
CONFIG=configs/student_new_voices.yaml
bash benchmarks/grow_corpus.sh runs/voices $CONFIG
cp runs/voices/corpus/summary.md $OUT/corpus_summary.md
RUN=runs/voices/checkpoints_broad
CONFIG=$CONFIG bash benchmarks/voice_stage.sh $RUN 3 e61da57 "${BROAD_SHIFT[@]}"
cp $RUN/distill/eval.csv $OUT/broad_eval.csv
cp $RUN/distill/metrics.csv $OUT/broad_metrics.csv
STEP=distill/exports/step-000800.safetensors
EXPORTS="--export release=$(bash benchmarks/release_at.sh e61da57) --export control=runs/speech/checkpoints_continued_broad/$STEP --export new_voices=$RUN/$STEP"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen.json $EXPORTS --shards runs/speech/unseen_voice_dev/shards --split dev \
  --samples 1000
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout.json $EXPORTS --split heldout --samples 200   # reported only
# per unseen speaker (where the gain comes from), the new-voices stage beside the release
for V in jm_kumo jf_nezumi jf_gongitsune jf_alpha jf_tebukuro; do
  bash benchmarks/pair_once.sh "$OUT/paired_unseen_$V.json" --export release="$(bash benchmarks/release_at.sh e61da57)" \
    --export new_voices=$RUN/$STEP --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 \
    --voices kokoro:$V
done
# explored: the new-voices stage averaged with the release's equalizer ingredient (trained on the old rows)
SOUP=runs/soups/new_voices_equalizer.safetensors
bash benchmarks/soup_once.sh $SOUP $RUN/$STEP \
  runs/speech/checkpoints_equalizer_candidate/$STEP
bash benchmarks/pair_once.sh $OUT/paired_unseen_soup_equalizer.json --export new_voices=$RUN/$STEP \
  --export with_equalizer=$SOUP --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
