# Two commands for a newcomer: `make demo` (set up + run the demo) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-ci test-all lint proto

$(BIN)/edgelab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[all,dev]"
	touch $@

setup: $(BIN)/edgelab

demo: setup
	$(BIN)/edgelab demo

test: setup
	$(BIN)/python -m pytest

# What CI runs: every test but the `gpu` ones (slow, multi-host and emulated-device tests included).
test-ci: setup
	$(BIN)/python -m pytest -m "not gpu" --durations=15

test-all: setup
	$(BIN)/python -m pytest -m ""

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy --explicit-package-bases edgelab coordinator agent pipelines dashboard benchmarks && $(BIN)/python proto/generate.py --check

proto: setup
	$(BIN)/python proto/generate.py
