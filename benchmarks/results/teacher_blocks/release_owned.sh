#!/usr/bin/env bash
# owned_stages.sh's soup with LAYERS owned layers (WORD: the count in words) released over the release of PREVIOUS
# (after its gate): the equal-weight average of the release's two stages with Whisper tiny.en's first LAYERS encoder
# layers after the stem, copied when each stage started and trained as the student's own (0.1 x lr). Packed fp16 with
# its facts and the morph corpus's target statistics (Whisper's positional table is left out: loading computes it),
# then `aura eval` of the shipped file into EVAL_DIR (run on quiet cores, its latency is reported), the source of
# results.json. (release_two.sh, release_three.sh)
#   bash benchmarks/results/teacher_blocks/release_owned.sh 3 three 9b11afb release_eval_three   # OUT_DIR=/tmp/x: pack there only
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 LAYERS WORD PREVIOUS_COMMIT EVAL_DIR" >&2; exit 2; }
LAYERS=$1
WORD=$2
PREVIOUS=$3
cd "$(dirname "$0")/../../.."
STORE=runs/hibari_morph/store.zarr bash benchmarks/pack_over_release.sh \
  runs/teacher_blocks/soup_b${LAYERS}_owned.safetensors "$PREVIOUS" "$(cat <<JSON
{"data_added": "; $WORD-layer soup: the same two stages again with Whisper tiny.en's first $WORD encoder layers after the stem, copied when each stage started and trained as the student's own at 0.1 x lr (student.teacher_blocks=$LAYERS)",
 "chosen_on": "both unseen-voice sets (Kokoro's five speakers, DECtalk's nine), paired with the previous release (benchmarks/results/teacher_blocks)",
 "previous_release": "$PREVIOUS",
 "teacher_blocks": $LAYERS, "teacher_blocks_lr_scale": 0.1,
 "stages": "the release recipe, seed 6, from 73eb500, once on the corpus grown by 3,000 rows in eight Hibari morphs and once beside the foreign voices' clips, each with $WORD owned layers (benchmarks/results/teacher_blocks/$WORD.sh)",
 "soup": "the equal-weight average of the two stages' students (benchmarks/student_soup.py; benchmarks/results/teacher_blocks/$WORD.sh)"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh "benchmarks/results/teacher_blocks/$4"
