# The two commands: `make figs` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= 2

.PHONY: figs test test-slow test-all test-properties bench bench-quick clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,dask]'
	touch $(STAMP)

figs: $(STAMP)
	$(BIN)/adamflow figs --scheme both --out paper_figs/out

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow" tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -m slow tests

test-all: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) tests

# the property tests of tests/test_properties.py with thousands of random examples (CI: a few hundred)
test-properties: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest tests/test_properties.py

# `adamflow bench` needs its peers: pip install -e '.[bench]' (torchode, jax, diffrax)
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/adamflow bench --json paper_figs/out/bench.json --plot paper_figs/out/bench

bench-quick: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/adamflow bench --quick

clean:
	rm -rf $(VENV) paper_figs/out .pytest_cache
	find . -name '*.nbi' -o -name '*.nbc' | xargs rm -f   # numba's kernel cache
