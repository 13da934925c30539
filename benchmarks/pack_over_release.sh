#!/usr/bin/env bash
# A student packed as the new release (fp16, pipeline/released/...) over the release of PREVIOUS_COMMIT: the chain's
# facts are taken from that release, FACTS_JSON's keys set over them (with "data_added" appended to its "data"),
# and the training store's target statistics shipped beside it (runs/speech's unless STORE names the store the
# student trained against, e.g. a grown corpus's). OUT_DIR defaults to the release folder.
#   [STORE=runs/hibari/store.zarr] bash benchmarks/pack_over_release.sh EXPORT PREVIOUS_COMMIT FACTS_JSON [OUT_DIR]
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 EXPORT PREVIOUS_COMMIT FACTS_JSON [OUT_DIR]" >&2; exit 2; }
cd "$(dirname "$0")/.."
PREVIOUS=$(bash benchmarks/release_at.sh "$2")
.venv/bin/python - "$1" "$PREVIOUS" "$3" "${4:-}" "${STORE:-runs/speech/store.zarr}/target_stats.npz" <<'PY'
import json, sys
from safetensors import safe_open
from pipeline.released import RELEASE_DIR, pack_release

export, previous, new_facts, out_dir, target_stats = sys.argv[1:]
with safe_open(previous, "pt") as handle:
    facts = json.loads(handle.metadata()["aura_release"])  # the chain so far, from the release it replaces
llm = facts.pop("llm")
new_facts = json.loads(new_facts)
facts["data"] += new_facts.pop("data_added", "")
facts.update(new_facts)
print(pack_release(export, out_dir or RELEASE_DIR, llm, facts, target_stats=target_stats))
PY
