#!/usr/bin/env bash
# Can the released student learn new voices from their untranscribed audio, with the teacher alone (issue 13)?
# Arm "adapted": configs/voice_adaptation.yaml, i.e. the release continued by distillation only (no transcript, no
# CTC term; the CTC head carried frozen; targets standardised with the release's statistics) for 200 steps x 16
# clips on 600 training rows spoken by three of Kokoro's five speakers, their words left out of the manifest.
# Arm "control": the same config and budget on the release's own corpus (its six training voices). Both are paired
# with the release on the unseen-voice dev set (dev texts: never trained on), split into the three adapted voices
# and the two that neither arm heard, on dev (the training voices) and on held-out (pico:en-GB, never heard by
# either).
#   bash benchmarks/results/voice_adaptation/run.sh    # each step resumes or skips what is already written
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/voice_adaptation
A=.venv/bin/aura
P=.venv/bin/python
CONFIG=configs/voice_adaptation.yaml
ADAPTED_VOICES=kokoro:jf_alpha,kokoro:jf_gongitsune,kokoro:jm_kumo
OTHER_VOICES=kokoro:jf_nezumi,kokoro:jf_tebukuro
RELEASE=$(bash benchmarks/release_at.sh 2925e8b)  # the release these results were measured from (2026-12-04)
FROM_RELEASE="--set train.init_from=$RELEASE"  # the config starts from the release of the day
[ -f runs/speech/unseen_voice_dev/shards/manifest.parquet ] || $P -m benchmarks.unseen_voice_dev \
  --config configs/student.yaml --out runs/speech/unseen_voice_dev
[ -f runs/voice_adaptation/shards/manifest.parquet ] || $P -m benchmarks.unseen_voice_dev \
  --config configs/student.yaml --split train --rows 600 --untranscribed --voices $ADAPTED_VOICES \
  --out runs/voice_adaptation
$A precompute --config $CONFIG
$A train --config $CONFIG $FROM_RELEASE --stage distill --resume
CONTROL=runs/speech/checkpoints_adaptation_control
$A train --config $CONFIG $FROM_RELEASE --stage distill --resume --set workdir=runs/speech --set paths.checkpoints=$CONTROL
for ARM in adapted control; do
  RUN=runs/voice_adaptation/checkpoints
  [ $ARM = control ] && RUN=$CONTROL
  cp $RUN/distill/metrics.csv $OUT/${ARM}_metrics.csv
done
ADAPTED=runs/voice_adaptation/checkpoints/distill/export/student.safetensors
EXPORTS="--export release=$RELEASE --export control=$CONTROL/distill/export/student.safetensors --export adapted=$ADAPTED"
pair() {  # NAME, then paired_ctc's arguments
  local f=$OUT/paired_$1.json
  shift
  # shellcheck disable=SC2086
  [ -f $f ] || $P -m benchmarks.paired_ctc --config configs/student.yaml $EXPORTS --out $f "$@"
}
pair unseen_adapted_voices --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 --voices $ADAPTED_VOICES
pair unseen_other_voices --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 --voices $OTHER_VOICES
pair dev --split dev --samples 200
pair heldout --split heldout --samples 200
# half the budget: the step-100 exports of both arms
EXPORTS="--export release=$RELEASE --export control=$CONTROL/distill/exports/step-000100.safetensors"
EXPORTS="$EXPORTS --export adapted=runs/voice_adaptation/checkpoints/distill/exports/step-000100.safetensors"
pair unseen_100 --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
pair dev_100 --split dev --samples 200
# Re-anchored: the adapted student, then 100 steps of distillation + 0.5 x CTC on the release's own transcribed corpus
# (the release's stem-stage objective): does the CTC term bring the old voices back, and what stays of the new?
REANCHORED=runs/speech/checkpoints_adaptation_reanchored
$A train --config $CONFIG $FROM_RELEASE --stage distill --resume --set workdir=runs/speech --set paths.checkpoints=$REANCHORED \
  --set train.init_from=$ADAPTED --set student.ctc_weight=0.5 --set train.max_steps=100 --set train.eval_every=100
cp $REANCHORED/distill/metrics.csv $OUT/reanchored_metrics.csv
EXPORTS="--export release=$RELEASE --export adapted=$ADAPTED --export reanchored=$REANCHORED/distill/export/student.safetensors"
pair unseen_reanchored --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
pair dev_reanchored --split dev --samples 200
pair heldout_reanchored --split heldout --samples 200
# Replayed: the adaptation with the release's own transcribed corpus mixed in (train.replay_from=runs/speech, half of
# each epoch's clips, drawn anew each epoch), the CTC term on its clips only (the new voices' have no words): does
# learning the new voices beside the old ones keep both? Arms differ in the CTC weight and the replayed share, and one
# leaves the replayed clips out of the distillation (train.replay_distill=false).
replay_arm() {  # NAME, then train's --set overrides
  local name=$1
  shift
  local run=runs/voice_adaptation/checkpoints_$name
  $A train --config $CONFIG $FROM_RELEASE --stage distill --resume --set paths.checkpoints=$run --set train.replay_from=runs/speech \
    --set train.replay_share=0.5 "$@"  # a later --set replay_share wins
  cp $run/distill/metrics.csv $OUT/${name}_metrics.csv
  cp $run/distill/eval.csv $OUT/${name}_eval.csv
  EXPORTS="--export release=$RELEASE --export adapted=$ADAPTED --export $name=$run/distill/export/student.safetensors"
  pair unseen_adapted_voices_$name --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 \
    --voices $ADAPTED_VOICES
  pair unseen_other_voices_$name --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 \
    --voices $OTHER_VOICES
  pair dev_$name --split dev --samples 200
}
replay_arm replayed --set student.ctc_weight=0.5
replay_arm replayed_ctc01 --set student.ctc_weight=0.1
replay_arm replayed_ctc002 --set student.ctc_weight=0.02
replay_arm replayed_distill --set student.ctc_weight=0
replay_arm replayed_ctc002_nodistill --set student.ctc_weight=0.02 --set train.replay_distill=false
replay_arm replayed_ctc002_share025 --set student.ctc_weight=0.02 --set train.replay_share=0.25
replay_arm replayed_ctc002_share075 --set student.ctc_weight=0.02 --set train.replay_share=0.75
for ARM in replayed replayed_ctc002 replayed_ctc002_share075; do
  EXPORTS="--export release=$RELEASE --export adapted=$ADAPTED"
  EXPORTS="$EXPORTS --export $ARM=runs/voice_adaptation/checkpoints_$ARM/distill/export/student.safetensors"
  pair heldout_$ARM --split heldout --samples 200
done
# Why the CTC term wins: 16 steps of the mix with and without it, the gradient's norm before clipping (grad_norm)
for W in 0.5 0; do
  [ -f $OUT/grad_norm_ctc_$W.csv ] && continue
  $A train --config $CONFIG $FROM_RELEASE --stage distill --fresh --set paths.checkpoints=runs/voice_adaptation/grad_norm_ctc_$W \
    --set train.replay_from=runs/speech --set student.ctc_weight=$W --set train.max_steps=16 --set train.eval_every=1000 \
    --set train.checkpoint_every=1000
  cp runs/voice_adaptation/grad_norm_ctc_$W/distill/metrics.csv $OUT/grad_norm_ctc_$W.csv
done
# Every arm's gain on the adapted voices against its cost on the training voices: tradeoff.png and tradeoff.md
$P -m benchmarks.paired_tradeoff --gain $OUT/paired_unseen_adapted_voices.json $OUT/paired_unseen_adapted_voices_replayed*.json \
  --cost $OUT/paired_dev.json $OUT/paired_dev_replayed*.json --gain-name "the 3 adapted Kokoro voices (119 clips)" \
  --cost-name "dev, the 6 training voices (200 clips)" --out $OUT/tradeoff.png
