#!/usr/bin/env bash
# The candidate released (2026-12-05, after release_gate.sh): candidate.sh's 800-step export packed fp16 over the
# previous release (2229f82) with its facts, then `aura eval` of the shipped file (CTC read-out, 200 + 200 held-out
# clips; run on quiet cores, its latency is reported), the source of the release's results.json.
#   bash benchmarks/results/high_pitch/release.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
EXPORT=${EXPORT:-runs/speech/checkpoints_high_pitch_candidate/distill/exports/step-000800.safetensors}
bash benchmarks/pack_over_release.sh "$EXPORT" 2229f82 "$(cat <<'JSON'
{"data_added": "; high-pitch stage: the 22,000-row corpus's train split, half of its clips heard raised in pitch",
 "chosen_on": "unseen-voice dev set (the dev rows in Kokoro's five speakers; benchmarks/results/unseen_voice_dev), paired with the previous release (benchmarks/results/high_pitch)",
 "previous_release": "2229f82",
 "high_pitch_stage_steps": 800, "high_pitch_stage_examples": 12800,
 "high_pitch_stage": "the balanced stage's recipe at lr 3e-4, warm-up 20, with half the clips heard raised (train.speaker_shift=0.5, pitch median x 1.2-2.6, formants x 1.0-1.2; benchmarks/results/high_pitch/candidate.sh)"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/high_pitch/release_eval
