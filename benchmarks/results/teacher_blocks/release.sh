#!/usr/bin/env bash
# owned.sh's soup released (after gate.sh): the equal-weight average of the release's two stages (the morph stage and
# the foreign-voices stage, 800 steps each of its recipe from 73eb500, seed 6) with Whisper tiny.en's first encoder
# layer in the front end, copied when each stage started and trained as the student's own (0.1 x lr). Packed fp16 over
# the release of 30830d9 with its facts and the morph corpus's target statistics, then `aura eval` of the shipped file
# (CTC read-out, 200 + 200 held-out clips; run on quiet cores, its latency is reported), the source of results.json.
#   bash benchmarks/results/teacher_blocks/release.sh     # OUT_DIR=/tmp/x: pack there only (a check)
set -euo pipefail
cd "$(dirname "$0")/../../.."
STORE=runs/hibari_morph/store.zarr bash benchmarks/pack_over_release.sh \
  runs/teacher_blocks/soup_b1_owned.safetensors 30830d9 "$(cat <<'JSON'
{"data_added": "; owned-layer soup: the same two stages again with Whisper tiny.en's first encoder layer (and its positional table) after the stem, copied when each stage started and trained as the student's own at 0.1 x lr (student.teacher_blocks=1, train.lr_scale_teacher_blocks=0.1)",
 "chosen_on": "both unseen-voice sets (the dev rows in Kokoro's five speakers, benchmarks/results/unseen_voice_dev; DECtalk's nine speakers), paired with the previous release (benchmarks/results/teacher_blocks)",
 "previous_release": "30830d9",
 "teacher_blocks": 1, "teacher_blocks_lr_scale": 0.1,
 "stages": "the release recipe, seed 6, from 73eb500, once on the corpus grown by 3,000 rows in eight Hibari morphs and once beside the foreign voices' clips, each with the owned layer (benchmarks/results/teacher_blocks/owned.sh)",
 "soup": "the equal-weight average of the two stages' students (benchmarks/student_soup.py; benchmarks/results/teacher_blocks/owned.sh)"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/teacher_blocks/release_eval
