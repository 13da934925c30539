#!/usr/bin/env bash
# A release candidate from the balanced arm of run.sh (issue 13): the released student continued 400 steps with
# distillation + W x CTC (W=0.05 unless set), then the release's stage 2 again (../student_stem/stage2.sh: LM loss
# + 0.3 x distillation + 0.3 x CTC, 150 steps x 16) so that its generated answers listen. Then the gate (paired with
# the release on the unseen-voice dev set, where it must read better; it stops there otherwise), dev, both
# read-outs and the listening test on dev, `aura eval` (CTC read-out, 200 + 200 held-out clips) and, reported only,
# the pairing on held-out.
#   W=0.05 bash benchmarks/results/ctc_balance/release.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
P=.venv/bin/python
W=${W:-0.05}
OUT=benchmarks/results/ctc_balance/release_$W
mkdir -p $OUT
RELEASED=$(bash benchmarks/release_at.sh 2925e8b)
STAGE1=runs/speech/checkpoints_ctc_balance_$W/distill/exports/step-000400.safetensors
RUN=runs/speech/checkpoints_ctc_balance_${W}_release
EXPORT=$RUN/tasks/export/student.safetensors
STAGE1=$STAGE1 bash benchmarks/results/student_stem/stage2.sh $RUN
cp $RUN/tasks/eval.csv $OUT/tasks_eval.csv
cp $RUN/tasks/metrics.csv $OUT/tasks_metrics.csv
EXPORTS="--export release=$RELEASED --export stage1=$STAGE1 --export candidate=$EXPORT"
pair() {  # NAME, then paired_ctc's arguments
  local f=$OUT/paired_$1.json
  shift
  # shellcheck disable=SC2086
  bash benchmarks/pair_once.sh $f $EXPORTS "$@"
}
pair unseen --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000
# The gate: the candidate must read the unseen voices better than the release (the upper end of the 95 % interval of
# its gap below 0); no further measuring of one that does not.
$P - $OUT/paired_unseen.json <<'PY' || exit 0
import json, sys
gap = json.load(open(sys.argv[1]))["students"]["candidate"]["vs_release"]
print(f"gate: unseen voices {100 * gap['gap']:+.1f} points vs the release (95 % {100 * gap['low']:+.1f} .. "
      f"{100 * gap['high']:+.1f}): {'passed' if gap['high'] < 0 else 'not passed, stopping here'}")
sys.exit(gap["high"] >= 0)
PY
pair dev --split dev --samples 200
[ -f $OUT/readout_dev.json ] || $P -m benchmarks.readout_dev --config configs/student.yaml --export $EXPORT \
  --samples 60 --out $OUT/readout_dev.json
[ -f $OUT/eval/report.md ] || $A eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export $EXPORT --out $OUT/eval
pair heldout --split heldout --samples 200   # reported, never chosen on
