#!/usr/bin/env bash
# Does a speaker adversary carry the student to a voice it never heard (issue 13)? The stage-1 arm recipe of
# benchmarks/stage1_arm.sh (from the released parts, distillation + 0.5 x CTC, lr 1e-3, 16 clips a step) on the
# 22,000-row corpus (configs/speech.yaml with corpus.num_utterances=22000: the rows the release trained on, no
# Kokoro), two arms of the same budget and data order: "plain", and "adversary" with train.speaker_adversary_weight
# (a voice classifier on the CTC layer's audio states behind a gradient reversal). Paired on the same 200 held-out
# clips (voice pico:en-GB, never trained on) and 200 dev clips (training voices), and `aura eval` of the arm.
# Every step resumes or skips finished work when run again; STEPS=1200 continues both runs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/speaker_adversary
WEIGHT=${WEIGHT:-0.5}
export PLAIN_RUN=runs/speech/checkpoints_plain22k
bash benchmarks/stage1_arm.sh $OUT plain $PLAIN_RUN
bash benchmarks/stage1_arm.sh $OUT adversary runs/speech/checkpoints_adversary --set train.speaker_adversary_weight=$WEIGHT
