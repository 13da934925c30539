#!/usr/bin/env bash
# An fp16 copy of a stage's final export, small enough to commit (~25 MB for a student with three owned Whisper
# layers), so that a checkout without runs/ (they are not kept between every sitting) need not train the stage again:
# every floating tensor in fp16 (as releases are shipped), the rest and the file's metadata as they are. Skipped when
# KEPT is there.
#   bash benchmarks/keep_stage.sh runs/x/distill/exports/step-000800.safetensors benchmarks/results/y/kept/x.safetensors
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 EXPORT KEPT" >&2; exit 2; }
cd "$(dirname "$0")/.."
[ -f "$2" ] && exit 0
mkdir -p "$(dirname "$2")"
.venv/bin/python - "$1" "$2" <<'PY'
import sys

from safetensors import safe_open
from safetensors.torch import save_file

source, kept = sys.argv[1:]
with safe_open(source, framework="pt") as handle:
    metadata = handle.metadata()
    tensors = {name: handle.get_tensor(name) for name in handle.keys()}
save_file({name: t.half() if t.is_floating_point() else t for name, t in tensors.items()}, kept + ".tmp",
          metadata=metadata)
PY
mv "$2.tmp" "$2"
