#!/usr/bin/env bash
# Does hearing other speakers in training carry the student to a voice it never heard (issue 13)? Two arms from the
# released parts, the same budget, the same data order: stage 1 (distillation + 0.5 x CTC, as the release's CTC
# stage) for STEPS steps x 16 clips, lr 1e-3, with train.speaker_shift 0 (arm "own voices") and 0.5 (arm "shifted":
# half the clips in another speaker's voice, formants x 0.88-1.15, pitch x 0.8-1.25, the teacher's targets those
# of the original clip). Then the CTC read-out of each on the held-out split (voice pico:en-GB, never trained on)
# and the dev split (the training voices). The data is configs/speech.yaml's (../student_continued/run.sh).
# Every step resumes or skips finished work when run again; STEPS=1200 continues both runs (the schedule stretches
# to the new end) and evaluates them again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/speaker_shift
RELEASED=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
STEPS=${STEPS:-400}
for ARM in own:0.0 shifted:0.5; do
  NAME=${ARM%%:*}; SHARE=${ARM##*:}; RUN=runs/speech/checkpoints_shift_$NAME
  $A train --config configs/student.yaml --stage distill --resume --set train.init_from=$RELEASED \
    --set student.ctc_weight=0.5 --set paths.checkpoints=$RUN --set train.max_steps=$STEPS --set train.lr=1e-3 \
    --set train.warmup_steps=20 --set train.speaker_shift=$SHARE --set train.checkpoint_every=100 \
    --set train.eval_samples=120 --set train.eval_every=$STEPS
  cp $RUN/distill/eval.csv $OUT/${NAME}_eval.csv
  cp $RUN/distill/metrics.csv $OUT/${NAME}_metrics.csv
done
for NAME in own shifted; do
  RUN=runs/speech/checkpoints_shift_$NAME
  [ -f $OUT/eval_${NAME}_$STEPS/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
    --train-bridge never --no-cosine --export $RUN/distill/export/student.safetensors --out $OUT/eval_${NAME}_$STEPS
done
