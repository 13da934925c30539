#!/usr/bin/env bash
# Does accent alone cost the student? Hibari's heart in its own American English and in British English (heart_gb:
# the package's British G2P before the same network), beside Pico en-US (training) and en-GB (held-out), 40 dev texts
# read by the release 30830d9's CTC head and by Whisper tiny.en.
#   bash benchmarks/results/accent/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
.venv/bin/python -m benchmarks.candidate_voices --config configs/student.yaml --export "$(bash benchmarks/release_at.sh 30830d9)" \
  --voices hibari:heart,hibari:heart_gb --texts 40 --out benchmarks/results/accent/candidate_voices.json
