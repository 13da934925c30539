#!/usr/bin/env bash
# two.sh's soup released (after gate_two.sh): the equal-weight average of the release's two stages with Whisper
# tiny.en's first two encoder layers in the front end, copied when each stage started and trained as the student's own
# (0.1 x lr). Packed fp16 over the release of a25cf19 with its facts and the morph corpus's target statistics, then
# `aura eval` of the shipped file (run on quiet cores, its latency is reported), the source of results.json.
#   bash benchmarks/results/teacher_blocks/release_two.sh     # OUT_DIR=/tmp/x: pack there only (a check)
set -euo pipefail
cd "$(dirname "$0")/../../.."
STORE=runs/hibari_morph/store.zarr bash benchmarks/pack_over_release.sh \
  runs/teacher_blocks/soup_b2_owned.safetensors a25cf19 "$(cat <<'JSON'
{"data_added": "; two-layer soup: the same two stages again with Whisper tiny.en's first two encoder layers after the stem, copied when each stage started and trained as the student's own at 0.1 x lr (student.teacher_blocks=2)",
 "chosen_on": "both unseen-voice sets (Kokoro's five speakers, DECtalk's nine), paired with the previous release (benchmarks/results/teacher_blocks)",
 "previous_release": "a25cf19",
 "teacher_blocks": 2, "teacher_blocks_lr_scale": 0.1,
 "stages": "the release recipe, seed 6, from 73eb500, once on the corpus grown by 3,000 rows in eight Hibari morphs and once beside the foreign voices' clips, each with two owned layers (benchmarks/results/teacher_blocks/two.sh)",
 "soup": "the equal-weight average of the two stages' students (benchmarks/student_soup.py; benchmarks/results/teacher_blocks/two.sh)"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/teacher_blocks/release_eval_two
