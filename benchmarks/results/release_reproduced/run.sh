#!/usr/bin/env bash
# Does the released student come back from its recipe on a machine that kept nothing (issue 13)? On a fresh
# machine the corpus and store are rebuilt (configs/student.yaml: 22,000 rows), the stem stage is trained again
# from the release before it (../teacher_stem/frozen_patch.sh, 400 steps) and then its stage 2
# (../student_stem/run.sh, 150 steps), and the result is compared with the student released at 2925e8b, tensor by
# tensor (`same_student.json`) and, when not identical, paired on the unseen-voice dev set (`paired_unseen.json`).
# The training curves land beside the committed ones (stage 1 here, stage 2 over ../student_stem/'s CSVs, so that
# `git diff` shows whether they reproduced).
#   bash benchmarks/results/release_reproduced/run.sh     # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=.venv/bin/python
OUT=benchmarks/results/release_reproduced
STAGE1_RUN=runs/speech/checkpoints_teacher_stem_frozen_patch
EXPORT=runs/speech/checkpoints_stem_release/tasks/export/student.safetensors
RELEASED=$(bash benchmarks/release_at.sh 2925e8b)  # the stem student as released on 2026-12-04
STOP_AFTER=speech bash benchmarks/rebuild_data.sh   # corpus, store, unseen-voice set: only what is missing
OUT=$OUT PLAIN_RUN=$STAGE1_RUN AURA_EVAL=0 bash benchmarks/results/teacher_stem/frozen_patch.sh  # stage 1, no pairing
bash benchmarks/results/student_stem/run.sh                                                    # stage 2
$P -m benchmarks.same_student $RELEASED $EXPORT --out $OUT/same_student.json
if ! $P -c "import json, sys; sys.exit(not json.load(open('$OUT/same_student.json'))['identical'])"; then
  [ -f $OUT/paired_unseen.json ] || $P -m benchmarks.paired_ctc --config configs/student.yaml \
    --shards runs/speech/unseen_voice_dev/shards --split dev --samples 1000 \
    --export released=$RELEASED --export reproduced=$EXPORT --out $OUT/paired_unseen.json
fi
