#!/usr/bin/env bash
# Two of Whisper tiny.en's four encoder layers owned by the student (after random.sh: a layer of that shape started at
# random gains nothing in a stage, so the gain is Whisper's weights; the next question is whether a second layer of
# them adds more). owned.sh's two stages with student.teacher_blocks=2 at 0.1 x lr; the morph stage paired with
# owned.sh's (one layer) first, then the soup of both stages with the release (a25cf19, owned.sh's soup).
#   bash benchmarks/results/teacher_blocks/two.sh     # after owned.sh; resumes; skips what is done
set -euo pipefail
exec bash "$(dirname "$0")/owned_stages.sh" 2 runs/teacher_blocks/b1_owned a25cf19 two
