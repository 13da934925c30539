#!/usr/bin/env bash
# soup.sh's student released (after gate.sh): the equal-weight average of two stages from the release of 73eb500 (800
# steps each of its recipe, seed 6): one on its corpus grown by 3,000 rows in eight speakers made from Hibari's heart
# (configs/student_hibari_morph.yaml), one beside 2,393 untranscribed clips of Festival's foreign voices
# (configs/foreign_voices.yaml). Packed fp16 over that release with its facts and the morph corpus's target
# statistics, then `aura eval` of the shipped file (CTC read-out, 200 + 200 held-out clips; run on quiet cores, its
# latency is reported), the source of results.json.
#   bash benchmarks/results/hibari_morph/release.sh     # OUT_DIR=/tmp/x: pack there only (a check)
set -euo pipefail
cd "$(dirname "$0")/../../.."
STORE=runs/hibari_morph/store.zarr bash benchmarks/pack_over_release.sh \
  runs/hibari_morph/soup_morph_foreign.safetensors 73eb500 "$(cat <<'JSON'
{"data_added": "; morph and foreign soup: that corpus grown to 31,000 rows, rows 28,000 on in eight speakers made from Hibari's heart in its vocoder (engines.VoiceMorph; configs/student_hibari_morph.yaml), averaged with a stage beside 2,393 untranscribed clips of Festival's Italian, Catalan, Czech and Finnish voices (configs/foreign_voices.yaml)",
 "chosen_on": "unseen-voice dev set (the dev rows in Kokoro's five speakers; benchmarks/results/unseen_voice_dev), paired with a control (the same stage on the previous corpus) and the previous release (benchmarks/results/hibari_morph)",
 "previous_release": "73eb500",
 "hibari_morph_stage_config": "configs/student_hibari_morph.yaml",
 "foreign_voices_stage_config": "configs/foreign_voices.yaml",
 "hibari_morph_stage_steps": 800, "hibari_morph_stage_examples": 12800,
 "foreign_voices_stage_steps": 800, "foreign_voices_stage_examples": 12800,
 "stages": "the Hibari 28k stage's recipe, seed 6, from the previous release (73eb500), once on its corpus grown by 3,000 rows in eight Hibari morphs (benchmarks/results/hibari_morph/run.sh) and once beside the foreign voices' clips (benchmarks/results/foreign_voices/run.sh)",
 "soup": "the equal-weight average of the morph stage's student and the foreign-voices stage's (benchmarks/student_soup.py; benchmarks/results/hibari_morph/soup.sh)"}
JSON
)" "${OUT_DIR:-}"
[ -n "${OUT_DIR:-}" ] && exit 0  # a packing check, not the release
bash benchmarks/eval_release.sh benchmarks/results/hibari_morph/release_eval
