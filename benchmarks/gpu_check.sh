#!/usr/bin/env bash
# The paper-scale GPU check (benchmarks/gpu_check.py) with its environment; results in benchmarks/results/.
#
#   benchmarks/gpu_check.sh                      # one GPU, no network: ~3-5 min on an H100 (budget 450 s)
#   benchmarks/gpu_check.sh --toy --out /tmp/x   # the same code at toy sizes on CPU (what the test runs)
#   benchmarks/gpu_check.sh --fetch-wheels       # where pip works: fetch the pure-Python/binary packages
#                                                # the pipeline imports that a bare CUDA image may lack,
#                                                # for Python ${WHEEL_PYTHON:-3.12}, into .whl/
#
# On the GPU machine the repository is used in place (PYTHONPATH, no `pip install -e`): torch,
# transformers, peft, tokenizers, safetensors, numpy, pyyaml and tqdm come from the image; anything
# else the pipeline imports (pydantic, zarr, soundfile, ...) is installed from .whl/ into a private
# folder when it is missing. Writes gpu_check.json, gpu_check.md and gpu_check.log to the output folder.
#
# Environment: PYTHON (default python3), GPU_CHECK_OUT (default benchmarks/results), AURA_CACHE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
WHEEL_DIR=${WHEEL_DIR:-.whl}
# What `import pipeline.infer, pipeline.eval.systems` needs beyond the CUDA image (versions as in
# the project's venv; pydantic-core must match pydantic exactly).
WHEELS=(
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
  soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
)

if [[ "${1:-}" == "--fetch-wheels" ]]; then
  mkdir -p "$WHEEL_DIR"
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEEL_DIR" "${WHEELS[@]}"
  echo "wheels in $WHEEL_DIR: carry that folder to the GPU machine (inside the repository, git-ignored)"
  exit 0
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
REQUIRED="import torch, transformers, peft, tokenizers, safetensors, yaml, tqdm, pydantic, zarr, numcodecs, soundfile"
if ! "$PY" -c "$REQUIRED" 2>/dev/null; then
  if compgen -G "$WHEEL_DIR/*.whl" >/dev/null; then
    SITE=${GPU_CHECK_SITE:-/tmp/aura-gpu-check-site}
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEEL_DIR"/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if ! "$PY" -c "$REQUIRED"; then
    echo "gpu_check: missing Python packages (above); run 'benchmarks/gpu_check.sh --fetch-wheels' where pip works" \
         "and bring $WHEEL_DIR/ along" >&2
    exit 2
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

OUT_DIR=${GPU_CHECK_OUT:-benchmarks/results}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do  # an --out among the arguments wins
  [[ "${args[$i]}" == "--out" && $((i + 1)) -lt ${#args[@]} ]] && OUT_DIR=${args[$((i + 1))]}
  [[ "${args[$i]}" == --out=* ]] && OUT_DIR=${args[$i]#--out=}
done
mkdir -p "$OUT_DIR"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu_check: /' || true
fi
set +e
"$PY" benchmarks/gpu_check.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
set -e
echo "gpu_check: exit $status; results in $OUT_DIR/gpu_check.{json,md,log}"
exit "$status"
