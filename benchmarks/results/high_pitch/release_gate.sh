#!/usr/bin/env bash
# The rest of the release gate for candidate.sh's student (issue 13), as ctc_balance/release_800.sh did for the
# release it would replace (../../release_gate.sh: both read-outs on dev, the probe, the listening test and the
# unseen-voice set per speaker, paired with the release). The pairings on the whole unseen-voice set, dev and
# held-out are candidate.sh's; the held-out `aura eval` of the shipped (fp16) file is release.sh's.
#   bash benchmarks/results/high_pitch/release_gate.sh    # resumes; skips what is done
set -euo pipefail
cd "$(dirname "$0")/../../.."
bash benchmarks/release_gate.sh benchmarks/results/high_pitch/candidate 2229f82 \
  runs/speech/checkpoints_high_pitch_candidate/distill/exports/step-000800.safetensors
