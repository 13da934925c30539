#!/usr/bin/env bash
# A second unseen-voice set, from an engine no student of the release's line has heard: DECtalk's nine speakers
# (formant synthesis, median F0 97-329 Hz; licence unclear, so rendered for measurement only and never trained on)
# speaking the dev rows (benchmarks/unseen_voice_dev.py), the CTC read-out of the release 30830d9 and of this sitting's
# candidates paired on it. Reported only: the gate's set has chosen every release since it was made, so its verdicts
# on candidates near the release carry that choice's luck; this set has chosen nothing.
#   bash benchmarks/results/hibari_morph/confirm.sh     # after cloud.sh, soup_four.sh and continued.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/hibari_morph
SET=runs/speech/dectalk_dev   # built by benchmarks/rebuild_data.sh too
VOICES=$(.venv/bin/python -c "from pipeline.data.engines import get_engine; print(','.join('dectalk:' + v for v in get_engine('dectalk').voices()))")
.venv/bin/python -m benchmarks.unseen_voice_dev --config configs/student_hibari_morph_cloud.yaml --voices "$VOICES" --out $SET
STEP=checkpoints/distill/exports/step-000800.safetensors
bash benchmarks/pair_once.sh $OUT/paired_dectalk_candidates.json --shards $SET/shards --split dev --samples 1000 \
  --export release="$(bash benchmarks/release_at.sh 30830d9)" \
  --export control=runs/hibari_28k/checkpoints_control6/distill/exports/step-000800.safetensors \
  --export wide_soup=runs/hibari_morph_wide/soup_wide_foreign.safetensors \
  --export cloud_soup=runs/hibari_morph_cloud/soup_cloud_foreign.safetensors \
  --export soup_four=runs/hibari_morph_cloud/soup_four.safetensors \
  --export continued=runs/hibari_morph_cloud/checkpoints_from_release/distill/exports/step-000800.safetensors
# every release since the unseen-voice set first chose one (2229f82 made it), oldest first, on the same clips
EXPORTS=()
for C in 30830d9 2229f82 742786a fd0397c e61da57 0dea27e 73eb500; do EXPORTS+=(--export "r$C=$(bash benchmarks/release_at.sh $C)"); done
bash benchmarks/pair_once.sh $OUT/paired_dectalk_releases.json --shards $SET/shards --split dev --samples 1000 "${EXPORTS[@]}"
# per speaker (median F0 97-329 Hz): where the release line's gain on this set came from
for V in $(echo "$VOICES" | tr ',' ' '); do
  bash benchmarks/pair_once.sh "$OUT/dectalk/paired_${V#dectalk:}.json" --shards $SET/shards --split dev --samples 1000 \
    --voices "$V" --export release="$(bash benchmarks/release_at.sh 30830d9)" --export r2229f82="$(bash benchmarks/release_at.sh 2229f82)"
done
