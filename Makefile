# Baton: the two commands a new machine needs are `make up` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The resolved dependency set, installed as constraints so every install is the audited one.
LOCK := requirements.lock
# Ports of `make up` (`make up PORT=3100 API_PORT=8180`); BATON_API__PORT, when set, is the
# API's default here too, so the Makefile does not override the settings.
PORT ?= 3000
API_PORT ?= $(or $(BATON_API__PORT),8080)

.PHONY: install lock audit up test test-e2e test-all test-fast test-faults bench lint typecheck db-upgrade openapi clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade -c $(LOCK) pip setuptools
	$(BIN)/pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

## install: create .venv and install Baton with its dev tools, at the versions of the lock
install: $(STAMP)

## lock: re-resolve the newest versions pyproject.toml allows into requirements.lock
lock:
	rm -rf .venv-lock
	$(PY) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip setuptools
	.venv-lock/bin/pip install --quiet -e ".[dev]"
	sed -n '/^#/p' $(LOCK) > $(LOCK).new
	.venv-lock/bin/pip freeze --all --exclude-editable | sort -f >> $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

## audit: the locked set, pyproject's floors and this venv against scripts/advisories.yaml
audit: $(STAMP)
	$(BIN)/python scripts/audit_deps.py --lock $(LOCK) --floors pyproject.toml --installed --live

## up: the Dagster webserver and daemon on PORT (3000), the API on API_PORT (8080)
up: $(STAMP)
	$(BIN)/baton up --port $(PORT) --api-port $(API_PORT)

## demo: the KPI flagship end to end on a throwaway deployment (free ports, temp data, no keys)
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: the test suite on two workers, but for the e2e and fault tests (Postgres tests skip
## outside CI when unreachable)
test: $(STAMP)
	$(BIN)/pytest -n 2

## test-e2e: whole deployments (`baton up`, the demo, the browser) driven from outside
test-e2e: $(STAMP)
	$(BIN)/pytest -n 2 -m e2e

## test-all: what CI runs: the suite, the e2e tests, then the fault tests
test-all: test test-e2e test-faults

## test-fast: everything but the tests that start Dagster processes
test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

## test-faults: the fault-injection tests (kill -9 of a deployment, Postgres stopped), serially
test-faults: $(STAMP)
	$(BIN)/pytest tests/faults -m fault -p no:xdist

## bench: the benchmark suite: every bench/ script, one table vs bare Dagster, bench/results/latest.json
## (`make bench BENCH_ARGS="--quick"` or `--only step_overhead,throughput`)
bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

## lint: ruff (lint and format check) and mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy baton orchestration_defs agent_resources sensors

## db-upgrade: migrate Baton's tables to the newest revision
db-upgrade: $(STAMP)
	$(BIN)/baton db upgrade

## openapi: regenerate docs/openapi.json from the API (a test checks it is current)
openapi: $(STAMP)
	$(BIN)/baton api openapi --out docs/openapi.json

## clean: remove the embedded data folder (runs, Dagster storage)
clean:
	rm -rf data
