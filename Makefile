# Two commands on a fresh machine: `make pipeline` (dvc repro) and `make test`.
# Each creates or reuses the virtual environment in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes: two keep a 2-core machine busy (services, Spark and subprocesses wait on I/O);
# each runs whole test files, so module fixtures are built once. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv pipeline test bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	# MovieLens-100K ships inside the recbole wheel; only its data is used.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt recbole
	touch $@

pipeline: venv
	test -d .git || git init -q
	dvc repro

test: venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: venv
	$(BIN)/python -m benchmarks.bench_dataset

clean-venv:
	rm -rf $(VENV)
