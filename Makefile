# Ravel: the commands a newcomer and an operator need. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PYTHONPATH := $(CURDIR)

.PHONY: help install browser demo test test-fast chaos bench lint migrate worker beat flower up down services clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/' | expand -t 12

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

install: $(BIN)/.installed browser  ## create .venv with Ravel and its dev tools

# The dashboard's browser tests drive Debian's chromium through Playwright's Python package;
# a browser is never downloaded (no `playwright install`).
browser:  ## Debian's chromium for the dashboard's browser tests, if missing
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "chromium is missing: install Debian's package (sudo apt-get install chromium)"; fi; }

demo: install  ## the procurement story on the embedded default (SQLite + filesystem broker)
	$(BIN)/python -m examples.procurement.demo

services:  ## make sure PostgreSQL, Redis and RabbitMQ are running for the tests
	@scripts/services.sh

test: install services  ## every test, chaos tests included (what CI runs)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: install  ## the fast set: no slow chaos tests
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

# The long seeded nemesis; override any of these: make chaos SEED=42 BROKER=amqp RUNS=300
SEED     ?=
RUNS     ?= 200
DURATION ?= 300
BROKER   ?= redis
WORKERS  ?= 3
MUTANT   ?=

chaos: install  ## the seeded nemesis (SEED, RUNS, DURATION, BROKER=redis|amqp, WORKERS, MUTANT)
	$(BIN)/python -m pipeline.testing.nemesis $(if $(SEED),--seed $(SEED)) --runs $(RUNS) \
		--duration $(DURATION) --broker $(BROKER) --workers $(WORKERS) $(if $(MUTANT),--mutant $(MUTANT))

# Every benchmark scenario against its baseline (bench/README.md); override: make bench
# SCALE=small SCENARIOS="step_overhead throughput"
SCALE     ?= full
SCENARIOS ?=

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	@touch $@

bench: $(BIN)/.bench-installed services  ## benchmarks vs bare Celery, DBOS, LangGraph (SCALE, SCENARIOS)
	$(BIN)/python -m bench $(SCENARIOS) --scale $(SCALE)

lint: install  ## ruff, formatting and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

migrate: install  ## migrate the configured database (RAVEL_DATABASE_URL)
	$(BIN)/ravel db upgrade

worker: install  ## a worker for the workflows in RAVEL_WORKFLOWS
	$(BIN)/celery -A tasks worker --loglevel INFO

beat: install  ## the reaper, timers and approval expiry
	$(BIN)/celery -A tasks beat --loglevel INFO

flower: install  ## Flower on http://127.0.0.1:5555
	$(BIN)/celery -A tasks flower --port=5555

up:  ## the production-like stack in Docker (postgres, redis, migrate, worker, beat, flower)
	docker compose up -d --build

down:  ## stop the Docker stack
	docker compose down

clean:  ## remove the embedded default's data and caches
	rm -rf .ravel .pytest_cache .mypy_cache .ruff_cache
