# Two commands on a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_TASK ?= rule_examples/sort.jsonl
DEMO_ORACLE ?= rule_examples/generate.py:sort

.PHONY: demo test test-fast lint sandbox browser bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Builds the Docker sandbox image when an engine is reachable; otherwise the process sandbox is used.
sandbox: $(STAMP)
	@if $(BIN)/python -c "import docker; docker.from_env().ping()" >/dev/null 2>&1; then \
		$(BIN)/autoconn sandbox build; \
	else \
		echo "no Docker engine reachable: candidates will run in the process sandbox (see README, Sandbox)"; \
	fi

# Writes generated_conns/ (the user's library, git-ignored): a clone stays clean. The tests read
# tests/fixtures/library instead.
demo: $(STAMP)
	$(BIN)/autoconn induce $(DEMO_TASK) --force --oracle $(DEMO_ORACLE)
	@echo
	$(BIN)/autoconn list

# The tests also need the export extra (torch CPU + transformer-lens), the ray extra and headless Chromium.
TEST_STAMP := $(VENV)/.test-installed
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,export,ray]'
	touch $(TEST_STAMP)

browser:
	@bash .ci/browser-setup.sh || echo "no Chromium could be installed: the browser test skips outside CI (see README, Reviewing)"

# Everything, slow tests included (CI runs this); the 20 slowest are listed at the end.
test: $(TEST_STAMP) sandbox browser
	$(BIN)/python -m pytest -q -rs --durations=20

# ruff and mypy as configured in pyproject.toml; in the test environment, so mypy sees torch's types
# (autoconn/export) as the tests do.
lint: $(TEST_STAMP)
	$(BIN)/ruff check autoconn tests benchmarks
	$(BIN)/mypy

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not docker"

# The fusion benchmark plots with matplotlib (the `bench` extra); the demo LM's weights are committed.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/autoconn bench rule_examples
	$(BIN)/python benchmarks/runtime.py
	$(BIN)/python benchmarks/fusion.py
	$(BIN)/python benchmarks/sizes.py

clean:
	rm -rf $(VENV) runs .pytest_cache
