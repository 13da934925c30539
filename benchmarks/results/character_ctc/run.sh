#!/usr/bin/env bash
# Letters beside tokens (issue 13): does a second CTC head that spells the transcript letter by letter, trained
# beside the LLM-token head on the same layer (student.character_ctc_weight), shape the student's states so that the
# token head reads voices it never heard better? On the release's frozen states a fresh character head heard more
# of a new voice's sounds than a fresh token head (CER 48 vs 58 %, ../ctc_vocabulary/) but spelt words badly; here
# it is only a training task, and the read-out stays the token head.
# Arms: the morph stage of the release (../hibari_morph/run.sh: the release recipe, seed 6, 800 steps x 16 from
# 73eb500 on configs/student_hibari_morph.yaml) is the control; the same stage with a character head at weight 0.1
# and at 0.3 (the token head's is 0.05; a character's loss is per letter, ~4 letters a token). Paired with the
# control on both unseen-voice sets, dev and, reported only, held-out.
#   bash benchmarks/results/character_ctc/run.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/voice_recipes.sh
OUT=benchmarks/results/character_ctc
CONTROL=runs/hibari_morph/checkpoints   # trained by ../hibari_morph/run.sh
for WEIGHT in 010 030; do
  RUN=runs/character_ctc/w$WEIGHT
  CONFIG=configs/student_hibari_morph.yaml bash benchmarks/voice_stage.sh $RUN 6 73eb500 "${RELEASE_RECIPE[@]}" \
    --set student.character_ctc_weight=0.${WEIGHT#0}
  cp $RUN/distill/eval.csv $OUT/w${WEIGHT}_eval.csv
  cp $RUN/distill/metrics.csv $OUT/w${WEIGHT}_metrics.csv
done
bash benchmarks/pair_sets.sh $OUT "" --export control=$CONTROL/distill/exports/step-000800.safetensors \
  --export characters_010=runs/character_ctc/w010/distill/exports/step-000800.safetensors \
  --export characters_030=runs/character_ctc/w030/distill/exports/step-000800.safetensors
