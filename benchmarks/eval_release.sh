#!/usr/bin/env bash
# The evaluation every release is shipped with: `aura eval` of the shipped fp16 file through its CTC read-out on
# 200 + 200 held-out clips (run on quiet cores: its latency is reported), into OUT_DIR unless its report is there.
# Its report.json is the source of the release's results.json.
#   bash benchmarks/eval_release.sh benchmarks/results/<study>/release_eval
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
cd "$(dirname "$0")/.."
[ -f "$1/report.md" ] || .venv/bin/aura eval --config configs/student.yaml --systems aura_ctc --max-samples 400 \
  --train-bridge never --no-cosine --export pipeline/released/aura-smollm2-135m-whisper-tiny-en/student.safetensors \
  --out "$1"
