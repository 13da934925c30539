#!/usr/bin/env bash
# Three of Whisper tiny.en's four encoder layers owned by the student (after two.sh: the second layer gained about as
# much on new voices as the first; does a third?). two.sh's stages with student.teacher_blocks=3; the morph stage
# paired with two.sh's (two layers), then the soup of both stages with the release (9b11afb, two.sh's soup packed).
#   bash benchmarks/results/teacher_blocks/three.sh     # after two.sh; resumes; skips what is done
set -euo pipefail
exec bash "$(dirname "$0")/owned_stages.sh" 3 runs/teacher_blocks/b2_owned 9b11afb three
