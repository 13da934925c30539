#!/usr/bin/env bash
# Do new speakers carry the student to a voice it never heard (issue 13)? The corpus grows by 3,000 rows spoken by
# Kokoro-82M's five speakers and three blends of them (configs/speech.yaml, corpus.voice_growth; first 2,000 more
# rows with the first voices, as the release's grown corpus had), then one stage-1 arm from the released parts with
# the recipe of ../speaker_shift/run.sh's arm "own" (distillation + 0.5 x CTC, lr 1e-3, warm-up 20, 400 steps x 16),
# on the grown data. It is compared with that arm (same budget, the first six voices only) on the same held-out
# clips (voice pico:en-GB, never trained on) and dev clips, paired.
# Every step resumes or skips finished work when run again; STEPS=1200 continues the run (the schedule stretches
# to the new end) and evaluates it again.
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
OUT=benchmarks/results/kokoro_voices
RELEASED=pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors
STEPS=${STEPS:-400}
RUN=runs/speech/checkpoints_kokoro
OWN=runs/speech/checkpoints_shift_own/distill/exports/step-$(printf %06d "$STEPS").safetensors  # ../speaker_shift
$A corpus --config configs/speech.yaml                                     # 22,000 -> 27,000 rows: ~45 min
$A ingest runs/speech/corpus/manifest.jsonl --config configs/speech.yaml   # only the new shards
$A precompute --config configs/speech.yaml                                 # only the new shards
$A train --config configs/student.yaml --stage distill --resume --set train.init_from=$RELEASED \
  --set student.ctc_weight=0.5 --set paths.checkpoints=$RUN --set train.max_steps=$STEPS --set train.lr=1e-3 \
  --set train.warmup_steps=20 --set train.checkpoint_every=100 --set train.eval_samples=120 \
  --set train.eval_every=$STEPS
cp $RUN/distill/eval.csv $OUT/kokoro_eval.csv
cp $RUN/distill/metrics.csv $OUT/kokoro_metrics.csv
[ -f $OUT/eval_kokoro_$STEPS/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $RUN/distill/export/student.safetensors --out $OUT/eval_kokoro_$STEPS
for SPLIT in heldout dev; do
  [ -f $OUT/paired_${SPLIT}_$STEPS.json ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml \
    --split $SPLIT --samples 200 --export own=$OWN --export kokoro=$RUN/distill/exports/step-$(printf %06d "$STEPS").safetensors \
    --out $OUT/paired_${SPLIT}_$STEPS.json
done
# The Kokoro voices' dev clips (texts never trained on) are also a test of unseen voices for the released student
# and the own-voices arm, who never heard them: it needs no held-out clip.
[ -f $OUT/paired_dev_kokoro_$STEPS.json ] || .venv/bin/python -m benchmarks.paired_ctc --config configs/student.yaml \
  --split dev --voices kokoro: --samples 200 --export released=$RELEASED --export own=$OWN \
  --export kokoro=$RUN/distill/exports/step-$(printf %06d "$STEPS").safetensors --out $OUT/paired_dev_kokoro_$STEPS.json
