#!/usr/bin/env bash
# New speakers made in Hibari's vocoder (issue 13): the release's corpus (configs/student_hibari_28k.yaml, 28,000
# rows) grown by 3,000 rows spoken by eight morphs of Hibari's "heart" (engines.VoiceMorph: its spectral envelope
# stretched along frequency and its F0 scaled before the waveform exists; configs/student_hibari_morph.yaml). The
# release's own recipe (benchmarks/voice_stage.sh with the equalizer stage's options; 800 steps x 16 at lr 3e-4,
# seed 6) from the release (73eb500), against the control of ../foreign_voices/ (the same recipe, seed and start on
# the release's own corpus: runs/hibari_28k/checkpoints_control6). Paired on the unseen-voice set (the gate), dev
# and, reported only, held-out.
#   bash benchmarks/results/hibari_morph/run.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/hibari_morph
CONFIG=configs/student_hibari_morph.yaml
P=.venv/bin/python
[ -f $OUT/candidate_voices.json ] || $P -m benchmarks.candidate_voices --config configs/student_hibari_28k.yaml \
  --export "$(bash benchmarks/release_at.sh 73eb500)" --engines hibari --texts 40 --out $OUT/candidate_voices.json
bash benchmarks/grow_corpus.sh runs/hibari_morph $CONFIG runs/hibari_28k
cp runs/hibari_morph/corpus/summary.md $OUT/corpus_summary.md
MORPH=runs/hibari_morph/checkpoints
CONFIG=$CONFIG bash benchmarks/voice_stage.sh $MORPH 6 73eb500 "${RELEASE_RECIPE[@]}"
cp $MORPH/distill/eval.csv $OUT/morph_eval.csv
cp $MORPH/distill/metrics.csv $OUT/morph_metrics.csv
CONTROL=runs/hibari_28k/checkpoints_control6   # trained by ../foreign_voices/run.sh
bash benchmarks/pair_sets.sh $OUT "" --export release="$(bash benchmarks/release_at.sh 73eb500)" \
  --export control=$CONTROL/distill/exports/step-000800.safetensors \
  --export morph=$MORPH/distill/exports/step-000800.safetensors
bash benchmarks/pair_sets.sh $OUT _arms --export control=$CONTROL/distill/exports/step-000800.safetensors \
  --export morph=$MORPH/distill/exports/step-000800.safetensors
