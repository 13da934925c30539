#!/usr/bin/env bash
# The release gate's measurements of a candidate beside the release it would replace (issue 13), for the results
# scripts of each release: both read-outs on dev (the candidate's and the release's), the probe, the listening test
# (dev 120 clips and the 8 shipped ones) and the unseen-voice set per speaker, each paired with the release on the
# same clips. The candidate's own script pairs the whole unseen-voice set, dev and held-out; the release's script
# evaluates the shipped fp16 file.
#   bash benchmarks/release_gate.sh OUT_DIR PREVIOUS_RELEASE_COMMIT CANDIDATE_EXPORT   # skips what is done
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 OUT_DIR PREVIOUS_RELEASE_COMMIT CANDIDATE_EXPORT" >&2; exit 2; }
OUT=$1
EXPORT=$3
cd "$(dirname "$0")/.."
A=.venv/bin/aura
P=.venv/bin/python
RELEASED=$(bash benchmarks/release_at.sh "$2")
EXAMPLES=pipeline/released/aura-smollm2-135m-whisper-tiny-en/examples
mkdir -p "$OUT"
[ -f "$OUT/readout_dev.json" ] || $P -m benchmarks.readout_dev --config configs/student.yaml --export "$EXPORT" \
  --samples 60 --out "$OUT/readout_dev.json"
[ -f "$OUT/readout_dev_release.json" ] || $P -m benchmarks.readout_dev --config configs/student.yaml \
  --export "$RELEASED" --samples 60 --out "$OUT/readout_dev_release.json"  # the release's, on the same clips
[ -f "$OUT/probe_dev.json" ] || $A probe --config configs/student.yaml --export "$EXPORT" --split dev \
  --max-samples 120 --out "$OUT/probe_dev.json"
[ -f "$OUT/listening_dev.json" ] || $P -m benchmarks.listening --config configs/student.yaml --samples 120 \
  --export release="$RELEASED" --export candidate="$EXPORT" --out "$OUT/listening_dev.json"
[ -f "$OUT/listening_shipped.json" ] || $P -m benchmarks.listening --config configs/student.yaml \
  --examples $EXAMPLES --export release="$RELEASED" --export candidate="$EXPORT" --out "$OUT/listening_shipped.json"
# per unseen speaker (their median pitch differs by more than an octave: where a gain comes from)
for V in jm_kumo jf_nezumi jf_gongitsune jf_alpha jf_tebukuro; do
  bash benchmarks/pair_once.sh "$OUT/paired_unseen_$V.json" --export release="$RELEASED" --export candidate="$EXPORT" \
    --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 --voices kokoro:$V
done
