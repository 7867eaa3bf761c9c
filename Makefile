# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ferry-installed
HOST ?= 127.0.0.1
PORT ?= 8000
LINT_DIRS := $(wildcard src tests examples bench)

.PHONY: install run test unit lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

examples/iris/bundle/ferry.yaml: examples/iris/train.py | $(STAMP)
	$(BIN)/python examples/iris/train.py

run: install examples/iris/bundle/ferry.yaml
	$(BIN)/ferry serve examples/iris/bundle --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest -n 2 -q

unit: install
	$(BIN)/pytest -q tests/unit

bench: install
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache examples/*/bundle
