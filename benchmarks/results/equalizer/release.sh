#!/usr/bin/env bash
# The soup released (2026-12-06, after soup.sh's gate): the average of the release of 2026-12-05 (742786a) and
# candidate.sh's student, packed fp16 over that release with its facts, then `aura eval` of the shipped file (CTC
# read-out, 200 + 200 held-out clips; run on quiet cores, its latency is reported), the source of results.json.
#   bash benchmarks/results/equalizer/release.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash benchmarks/pack_over_release.sh runs/soups/equalizer_release.safetensors 742786a "$(cat <<'JSON'
{"data_added": "; equalizer stage: the 22,000-row corpus (rebuilt) train split, half of its clips raised in pitch and half heard through a random equalizer",
 "chosen_on": "unseen-voice dev set (the dev rows in Kokoro's five speakers; benchmarks/results/unseen_voice_dev), paired with the previous release (benchmarks/results/equalizer)",
 "previous_release": "742786a",
 "equalizer_stage_steps": 800, "equalizer_stage_examples": 12800,
 "equalizer_stage": "the high-pitch stage again from the balanced student (2229f82) with half of the clips also heard through six random peak filters (train.equalizer=0.5, equalizer_max_db=15; benchmarks/results/equalizer/candidate.sh)",
 "soup": "the equal-weight average of the high-pitch stage's student (742786a) and the equalizer stage's (benchmarks/student_soup.py; benchmarks/results/equalizer/soup.sh)"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/equalizer/release_eval
