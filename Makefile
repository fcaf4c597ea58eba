# minifinn: two set-up commands for a fresh Debian machine: `make run` and `make test`.
# Both create .venv and install what is missing; they are quick when nothing changed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.minifinn-installed
SYS_STAMP := $(VENV)/.minifinn-system-packages
PYTEST_ARGS ?=
# test processes (pytest-xdist): one per core; the tests themselves run single-threaded (tests/conftest.py)
TEST_WORKERS ?= auto

.PHONY: run test test-slow bench dse setup clean-venv

setup: $(STAMP)

$(SYS_STAMP): scripts/ensure_system_packages.sh
	@bash scripts/ensure_system_packages.sh
	@mkdir -p $(VENV) && touch $@

$(STAMP): pyproject.toml $(SYS_STAMP)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e .
	@touch $@

run: setup
	$(PY) build_flows/vit_tiny.py

# Default suite (everything not marked slow). pytest exit code 5 ("no tests collected") is not a failure.
test: setup
	@$(PY) -m pytest -m "not slow and not bench" -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-slow: setup
	@$(PY) -m pytest -m "slow" -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: setup
	@$(PY) -m pytest -m "bench" -s $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no benchmarks collected"; exit 0; fi; exit $$rc

# The format study (build_flows/dse.py): CNN and ViT on Fashion-MNIST, INT3-8 and the study's ExMy formats (W = A),
# 3 training seeds per point, LUT-only and DSP costs. Budget <= 2 h on 2 cores (measured: 1 h 04 min on a clean
# clone); a rerun resumes from out/dse/points. The mixed-precision search is extra: add --mixed.
dse: setup
	$(PY) build_flows/dse.py --model cnn --model vit --seeds 3 --jobs 2 --output-dir out/dse

clean-venv:
	rm -rf $(VENV)
