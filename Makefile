# Every target creates .venv if it is missing; the first install pins the CPU build of PyTorch.
# Installing builds the compiled crop-resize kernel where a C compiler is found; editing it
# (or setup.py) reinstalls.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-continuous test test-quick mutation-check lint bench clean

$(STAMP): pyproject.toml setup.py src/aclstm/data/_cropresize.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,export]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aclstm demo --work-dir runs/demo

# Continuous gestures: train synth_continuous, score it, stream a validation video through it.
demo-continuous: $(STAMP)
	$(BIN)/aclstm demo --continuous --work-dir runs/demo-continuous

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -n auto --durations=10

# Plants realistic bugs one at a time in a copy of the project; every one must be caught.
mutation-check: $(STAMP)
	$(BIN)/python tests/mutation_check.py

test-quick: $(STAMP)
	$(BIN)/python -m pytest -n auto -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,export,bench]'
	$(BIN)/python benchmarks/bench_cells.py
	$(BIN)/python benchmarks/bench_network.py
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_stream.py
	$(BIN)/python benchmarks/bench_export.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/aclstm/data/*.so .pytest_cache .ruff_cache
