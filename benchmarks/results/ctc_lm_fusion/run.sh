#!/usr/bin/env bash
# The released student's CTC read-out with a prefix beam search and the LLM itself (adapters off) as its language
# model (issue 13): no training, only how the transcript is read off the CTC log-probabilities. The setting
# (FUSED=beam,lm_weight,length_bonus) was chosen on the unseen-voice dev set (../unseen_voice_dev/: Kokoro's five
# speakers, the set choices are made on; the grid is in README.md); here it is paired with the greedy path on the same
# clips there, then once on held-out (voice pico:en-GB) and dev; `aura eval` reads held-out with it (transcripts and
# spoken QA) and the read-out benchmark times it beside the greedy read-out.
#   bash benchmarks/results/ctc_lm_fusion/run.sh     # each step skips what is already written
#   RELEASE=2229f82 bash benchmarks/results/ctc_lm_fusion/run.sh   # a later release, into release_2229f82/
set -euo pipefail
cd "$(dirname "$0")/../../.."
RELEASE=${RELEASE:-2925e8b}  # the release it was first measured on
OUT=benchmarks/results/ctc_lm_fusion
[ "$RELEASE" = 2925e8b ] || OUT=$OUT/release_$RELEASE
mkdir -p $OUT
P=.venv/bin/python
R=$(bash benchmarks/release_at.sh "$RELEASE")
FUSED=${FUSED:-6,0.3,2}
[ -f $OUT/paired_unseen.json ] || $P -m benchmarks.paired_ctc --config configs/student.yaml \
  --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 \
  --export greedy=$R --export fused=$R --search fused=$FUSED --out $OUT/paired_unseen.json
for SPLIT in heldout dev; do
  [ -f $OUT/paired_$SPLIT.json ] || $P -m benchmarks.paired_ctc --config configs/student.yaml --split $SPLIT \
    --samples 200 --export greedy=$R --export fused=$R --search fused=$FUSED --out $OUT/paired_$SPLIT.json
done
IFS=, read -r BEAM LM BONUS <<< "$FUSED"
[ -f $OUT/eval_fused/report.md ] || .venv/bin/aura eval --config configs/student.yaml --systems aura_ctc \
  --max-samples 400 --train-bridge never --no-cosine --export $R --set eval.ctc_beam=$BEAM \
  --set eval.ctc_lm_weight=$LM --set eval.ctc_length_bonus=$BONUS --out $OUT/eval_fused
[ -f $OUT/readout_bench.json ] || $P -m benchmarks.ctc_readout_bench --reps 3 --beam $BEAM --lm-weight $LM \
  --length-bonus $BONUS --out $OUT/readout_bench.json
