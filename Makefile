# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ferry-installed
HOST ?= 127.0.0.1
PORT ?= 8000
# `make run` keeps its registry (SQLite + artifact folder) inside the checkout, git-ignored
RUN_HOME ?= $(CURDIR)/.ferry
LINT_DIRS := $(wildcard src tests examples bench)

.PHONY: install run test unit lint bench bench-venv bench-compare clean containers test-tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

examples/%/bundle/ferry.yaml: examples/%/train.py | $(STAMP)
	$(BIN)/python examples/$*/train.py

run: install examples/iris/bundle/ferry.yaml examples/diabetes/bundle/ferry.yaml
	FERRY_HOME=$(RUN_HOME) $(BIN)/python examples/register.py http://$(HOST):$(PORT)
	FERRY_HOME=$(RUN_HOME) $(BIN)/ferry server --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy src
	$(BIN)/lint-imports

# checkov pins its own python-hcl2 (clashing with the dev extra's): it lives in its own venv
CHECKOV := .tools/checkov/bin/checkov
$(CHECKOV):
	@test -x .tools/checkov/bin/python || $(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip install --quiet 'checkov>=3.2'

# podman, buildah, mmdebstrap (image builds without a docker daemon); idempotent, seconds when set
containers:
	scripts/setup-containers.sh

test: lint $(CHECKOV) containers test-tools
	$(BIN)/pytest -n 2 -q

unit: install
	$(BIN)/pytest -q tests/unit

# benchmarks run Ferry as a user installs it (`pip install ferry-ml`, no extras): the dev
# extra's pyarrow alone, imported by pandas 3 whenever it is installed, adds 65 MB per worker
BENCH_VENV := .bench/ferry-venv
bench-venv:
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet .
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall .

bench: bench-venv
	$(BENCH_VENV)/bin/python bench/serve.py

# Ferry at BEFORE (a commit or a folder) and AFTER (a folder or a commit), each in its own venv
# as a user installs it, beside the minimal app, in one run of the peer harness: about 6
# minutes (bench/README.md, section 4). E.g. make bench-compare AFTER=/path/to/tree
BEFORE ?= 964d335
AFTER ?= $(CURDIR)
COMPARE_ARGS ?=
bench-compare:
	@command -v wrk >/dev/null || { export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends wrk || \
	  { apt-get update && apt-get install -y --no-install-recommends wrk; }; }
	$(PYTHON) bench/compare.py --before $(BEFORE) --after $(AFTER) $(COMPARE_ARGS)

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache examples/*/bundle

# programs the tests drive: chromium (the drift report's screenshot), promtool (alert rules);
# bubblewrap is also a server requirement: the sandbox of uploaded code (see README)
TEST_PACKAGES := chromium prometheus bubblewrap
test-tools:
	@command -v chromium >/dev/null && command -v promtool >/dev/null && \
	  command -v bwrap >/dev/null || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends $(TEST_PACKAGES) || \
	  { apt-get update && apt-get install -y --no-install-recommends $(TEST_PACKAGES); }; }
