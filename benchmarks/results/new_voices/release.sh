#!/usr/bin/env bash
# The Hibari corpus's equalizer stage released (after equalizer_hibari.sh and gate_hibari.sh): the release of e61da57
# trained on 800 steps on the corpus grown by 3,000 rows in Hibari's "heart" (configs/student_hibari.yaml), packed
# fp16 over that release with its facts and the grown store's target statistics, then `aura eval` of the shipped file
# (CTC read-out, 200 + 200 held-out clips; run on quiet cores, its latency is reported), the source of results.json.
#   bash benchmarks/results/new_voices/release.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
STORE=runs/hibari/store.zarr bash benchmarks/pack_over_release.sh \
  runs/hibari/checkpoints_equalizer/distill/exports/step-000800.safetensors e61da57 "$(cat <<'JSON'
{"data_added": "; Hibari stage: the corpus grown to 25,000 rows, rows 22,000 on in Hibari's heart (configs/student_hibari.yaml; 23,750 training rows, 17.56 h, Hibari 2.36 h), half of its clips raised (pitch x 1.2-2.6, formants x 1.0-1.2) and half heard through the +-15-dB equalizer",
 "chosen_on": "unseen-voice dev set (the dev rows in Kokoro's five speakers; benchmarks/results/unseen_voice_dev), paired with the previous release and with the Hibari corpus's broad-warp stage and the two stages' soup (benchmarks/results/new_voices)",
 "previous_release": "e61da57",
 "hibari_stage_config": "configs/student_hibari.yaml",
 "hibari_stage_steps": 800, "hibari_stage_examples": 12800,
 "hibari_stage": "the equalizer stage's recipe (lr 3e-4, warm-up 20, distillation + 0.05 x CTC, speaker_shift 0.5, equalizer 0.5 at +-15 dB) from the previous release (e61da57), seed 4, on the corpus grown by 3,000 rows in Hibari's heart (benchmarks/results/new_voices/equalizer_hibari.sh)",
 "soup": "none: these weights are the Hibari stage's student alone (its soup with the Hibari corpus's broad-warp stage read the unseen-voice set at 70.9 vs 70.5 %); the previous release they start from is the soup of the equalizer and broad-warp stages"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/new_voices/release_eval
