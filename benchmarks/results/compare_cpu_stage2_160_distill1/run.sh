#!/usr/bin/env bash
# Issue 5: compare_cpu_stage2_80_distill1 with twice the stage-2 budget (160 steps x 8 = 1,280 examples,
# ~5-6 passes over the training split); the bridge projector trained for the same 160 x 8.
set -euo pipefail
TASKS_STEPS=160 EVERY=80 exec "$(dirname "$0")/../compare_cpu_stage2_80_distill1/run.sh"
