# paysaga: `make dev` runs the whole stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 1

.PHONY: dev test lint typecheck audit bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/paysaga dev --workers $(WORKERS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

chaos: $(STAMP)
	$(BIN)/python -m paysaga.chaos

audit: $(STAMP)
	$(BIN)/paysaga ledger audit

# Starts its own stack on free ports; BENCH_ARGS="--duration 120 --rate 15", or "--quick".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .mypy_cache .pytest_cache .ruff_cache
