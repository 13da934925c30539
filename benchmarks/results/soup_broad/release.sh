#!/usr/bin/env bash
# The two-way soup released (after soups.sh and gate.sh): the average of the equalizer stage (seed 0,
# ../equalizer/candidate.sh) and the broad-warp stage (seed 1, candidate.sh), both from the balanced student
# (2229f82), packed fp16 over the release it replaces (fd0397c) with its facts, then `aura eval` of the shipped file
# (CTC read-out, 200 + 200 held-out clips; run on quiet cores, its latency is reported), the source of results.json.
#   bash benchmarks/results/soup_broad/release.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash benchmarks/pack_over_release.sh runs/soups/equalizer_broad.safetensors fd0397c "$(cat <<'JSON'
{"data_added": "; broad-warp stage: the same train split drawn with seed 1, half of its clips warped both ways (pitch x 0.7-2.6, formants x 0.85-1.25)",
 "chosen_on": "unseen-voice dev set (the dev rows in Kokoro's five speakers; benchmarks/results/unseen_voice_dev), paired with the previous release (benchmarks/results/soup_broad)",
 "previous_release": "fd0397c",
 "broad_stage_steps": 800, "broad_stage_examples": 12800,
 "broad_stage": "the high-pitch stage again from the balanced student (2229f82) with seed 1 and the shift widened both ways (train.speaker_pitch_range=[0.7,2.6], speaker_formant_range=[0.85,1.25]; benchmarks/results/soup_broad/candidate.sh)",
 "soup": "the equal-weight average of the equalizer stage's student and the broad-warp stage's (benchmarks/student_soup.py; benchmarks/results/soup_broad/soups.sh); the high-pitch stage's student (742786a) is not in it"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/soup_broad/release_eval
