#!/usr/bin/env bash
# The release gate for the Hibari corpus's equalizer stage (equalizer_hibari.sh; the lowest on the unseen-voice set,
# 70.5 %, of that stage, hibari.sh's stage and their soup) beside the release it would replace (e61da57): paired on
# dev and, reported only, held-out (with the soup), both dev read-outs, the probe, the listening test and the five
# unseen speakers and the release's own dev read-outs on the same clips (../../release_gate.sh).
#   bash benchmarks/results/new_voices/gate_hibari.sh     # after equalizer_hibari.sh; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/new_voices
CANDIDATE=runs/hibari/checkpoints_equalizer/distill/exports/step-000800.safetensors
EXPORTS="--export release=$(bash benchmarks/release_at.sh e61da57) --export equalizer=$CANDIDATE --export soup=runs/soups/hibari_broad_equalizer.safetensors"
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_dev_hibari_soup.json $EXPORTS --split dev --samples 200
# shellcheck disable=SC2086
bash benchmarks/pair_once.sh $OUT/paired_heldout_hibari_soup.json $EXPORTS --split heldout --samples 200  # reported only
bash benchmarks/release_gate.sh $OUT/gate_hibari e61da57 $CANDIDATE
