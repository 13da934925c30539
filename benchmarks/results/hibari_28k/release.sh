#!/usr/bin/env bash
# run.sh's stage released (after gate.sh): the release of 0dea27e trained 800 more steps on the Hibari corpus grown
# to 28,000 rows (configs/student_hibari_28k.yaml), packed fp16 over that release with its facts and the grown
# store's target statistics, then `aura eval` of the shipped file (CTC read-out, 200 + 200 held-out clips; run on
# quiet cores, its latency is reported), the source of results.json.
#   bash benchmarks/results/hibari_28k/release.sh     # OUT_DIR=/tmp/x: pack there only (a check)
set -euo pipefail
cd "$(dirname "$0")/../../.."
STORE=runs/hibari_28k/store.zarr bash benchmarks/pack_over_release.sh \
  runs/hibari_28k/checkpoints_equalizer/distill/exports/step-000800.safetensors 0dea27e "$(cat <<'JSON'
{"data_added": "; Hibari 28k stage: that corpus grown to 28,000 rows, rows 25,000 on in Hibari's heart too (configs/student_hibari_28k.yaml), the same shift and equalizer",
 "chosen_on": "unseen-voice dev set (the dev rows in Kokoro's five speakers; benchmarks/results/unseen_voice_dev), paired with the previous release (benchmarks/results/hibari_28k)",
 "previous_release": "0dea27e",
 "hibari_28k_stage_config": "configs/student_hibari_28k.yaml",
 "hibari_28k_stage_steps": 800, "hibari_28k_stage_examples": 12800,
 "hibari_28k_stage": "the Hibari stage's recipe again, seed 5, from the previous release (0dea27e), on the Hibari corpus grown by 3,000 more rows in Hibari's heart (benchmarks/results/hibari_28k/run.sh)",
 "soup": "none: these weights are the Hibari 28k stage's student alone; the release two back (e61da57) was the soup of the equalizer and broad-warp stages"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/hibari_28k/release_eval
