#!/usr/bin/env bash
# More morphs (after run.sh): the morph corpus grown by 3,000 more rows in sixteen more speakers made from Hibari's
# heart (configs/student_hibari_morph_wide.yaml: tracts x 0.80-1.26 and pitches x 0.50-1.70 the first eight do not
# combine), the same stage as run.sh's (the release's recipe, seed 6, from 73eb500), paired with the release, the
# control and run.sh's morph stage on the unseen-voice set, dev and, reported only, held-out. Does the lever grow
# with the number of speakers made, or saturate as one voice's rows did?
#   bash benchmarks/results/hibari_morph/wide.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/hibari_morph
CONFIG=configs/student_hibari_morph_wide.yaml
bash benchmarks/grow_corpus.sh runs/hibari_morph_wide $CONFIG runs/hibari_morph
cp runs/hibari_morph_wide/corpus/summary.md $OUT/corpus_summary_wide.md
[ "${GROW_ONLY:-}" = 1 ] && exit 0
WIDE=runs/hibari_morph_wide/checkpoints
CONFIG=$CONFIG bash benchmarks/voice_stage.sh $WIDE 6 73eb500 "${RELEASE_RECIPE[@]}"
cp $WIDE/distill/eval.csv $OUT/wide_eval.csv
cp $WIDE/distill/metrics.csv $OUT/wide_metrics.csv
bash benchmarks/pair_sets.sh $OUT _wide --export control=runs/hibari_28k/checkpoints_control6/distill/exports/step-000800.safetensors \
  --export release="$(bash benchmarks/release_at.sh 73eb500)" \
  --export morph=runs/hibari_morph/checkpoints/distill/exports/step-000800.safetensors \
  --export wide=$WIDE/distill/exports/step-000800.safetensors
