#!/usr/bin/env bash
# What issue 13's QA target (>= 50 % on held-out) asks of the bundled LLM: the held-out split's 200 spoken questions
# (the same 400 utterances as every release's `aura eval`) answered by the frozen SmolLM2-135M-Instruct from their
# reference transcripts (`text`: no audio, the bound on what hearing can add) and from Whisper tiny.en's transcripts
# (`cascade`), side by side in one run, with the same QA rule as the release's numbers. No student is trained or chosen.
#   bash benchmarks/results/qa_ceiling/run.sh     # after runs/speech and its store are built (benchmarks/rebuild_data.sh:
#                                                 # with a store, `aura eval` reads only the rows it holds)
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/qa_ceiling
[ -f "$OUT/report.md" ] || .venv/bin/aura eval --config configs/student.yaml --systems text,cascade --max-samples 400 \
  --train-bridge never --no-cosine --out "$OUT"
