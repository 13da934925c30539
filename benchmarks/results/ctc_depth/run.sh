#!/usr/bin/env bash
# A deeper CTC read-out (issue 13): the released student (2229f82) reads its transcripts at layer 8, the deepest
# distilled one, so the LoRA that must copy the teacher is also all the read-out has. Here it is continued 400 steps
# with its own balanced recipe (distillation + 0.05 x CTC, the stem, ../ctc_balance) twice: as it is (control), and
# with LoRA on layers 9-12 too (starting at zero) and the CTC head moved to layer 12 (depth12: distillation still
# ends at layer 8, layers 9-12 learn from the CTC term alone). Paired with the release and each other on the
# unseen-voice set (220 clips, never trained on, the set releases are chosen on) and dev (200); held-out reported.
#   bash benchmarks/results/ctc_depth/run.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/ctc_depth
RELEASED=$(bash benchmarks/release_at.sh 2229f82)
RECIPE=(--set student.teacher_stem=true --set train.lr_scale_front_end=10 --set train.lr_scale_patch_embedding=0
        --set student.ctc_weight=0.05)
arm() {  # NAME, then overrides
  local NAME=$1 RUN=runs/speech/checkpoints_ctc_depth_$1
  shift
  INIT=$RELEASED PLAIN_RUN=$RUN AURA_EVAL=0 STEPS=400 bash benchmarks/stage1_arm.sh $OUT $NAME $RUN "${RECIPE[@]}" "$@"
}
arm control
arm depth12 --set student.lora_layers=12 --set student.ctc_layer=12
EXPORTS="--export release=$RELEASED --export control=runs/speech/checkpoints_ctc_depth_control/distill/exports/step-000400.safetensors"
EXPORTS="$EXPORTS --export depth12=runs/speech/checkpoints_ctc_depth_depth12/distill/exports/step-000400.safetensors"
UNSEEN=(--shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000)
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen.json $EXPORTS "${UNSEEN[@]}"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout.json $EXPORTS --split heldout --samples 200   # reported only
# The arm against its own control (same steps, data and schedule), on the selection sets.
DEPTH="--export control=runs/speech/checkpoints_ctc_depth_control/distill/exports/step-000400.safetensors"
DEPTH="$DEPTH --export depth12=runs/speech/checkpoints_ctc_depth_depth12/distill/exports/step-000400.safetensors"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_unseen_vs_control.json $DEPTH "${UNSEEN[@]}"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev_vs_control.json $DEPTH --split dev --samples 200
