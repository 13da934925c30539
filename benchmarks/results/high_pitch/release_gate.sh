#!/usr/bin/env bash
# The rest of the release gate for candidate.sh's student (issue 13), as ctc_balance/release_800.sh did for the
# release it would replace: both read-outs on dev, the probe and the listening test (dev 120 clips and the 8 shipped
# ones, paired with the release). The pairings on the unseen-voice set, dev and held-out are candidate.sh's; the
# held-out `aura eval` of the shipped (fp16) file is release.sh's.
#   bash benchmarks/results/high_pitch/release_gate.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
A=.venv/bin/aura
P=.venv/bin/python
OUT=benchmarks/results/high_pitch/candidate
RELEASED=$(bash benchmarks/release_at.sh 2229f82)
EXPORT=runs/speech/checkpoints_high_pitch_candidate/distill/exports/step-000800.safetensors
EXAMPLES=pipeline/released/aura-smollm2-135m-whisper-tiny-en/examples
[ -f $OUT/readout_dev.json ] || $P -m benchmarks.readout_dev --config configs/student.yaml --export $EXPORT \
  --samples 60 --out $OUT/readout_dev.json
[ -f $OUT/probe_dev.json ] || $A probe --config configs/student.yaml --export $EXPORT --split dev \
  --max-samples 120 --out $OUT/probe_dev.json
[ -f $OUT/listening_dev.json ] || $P -m benchmarks.listening --config configs/student.yaml --samples 120 \
  --export release=$RELEASED --export candidate=$EXPORT --out $OUT/listening_dev.json
[ -f $OUT/listening_shipped.json ] || $P -m benchmarks.listening --config configs/student.yaml --examples $EXAMPLES \
  --export release=$RELEASED --export candidate=$EXPORT --out $OUT/listening_shipped.json
# per unseen speaker, paired with the release (the new voices' gain by pitch)
for V in jm_kumo jf_nezumi jf_gongitsune jf_alpha jf_tebukuro; do
  bash benchmarks/pair_once.sh $OUT/paired_unseen_$V.json --export release=$RELEASED --export candidate=$EXPORT \
    --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 --voices kokoro:$V
done
