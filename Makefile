# Every target installs what it needs into .venv first: a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests, the bench, the soak and the load run need PostgreSQL on ZENCOURT_TEST_POSTGRES_URL's
# address (127.0.0.1:5432): scripts/with-postgres.sh uses the server that answers there, or runs a
# throwaway cluster of its own for the command's lifetime (installing Debian's postgresql first).
WITH_POSTGRES := scripts/with-postgres.sh

export ZENCOURT_DATA_DIR ?= $(CURDIR)/.zencourt
export DAGSTER_HOME ?= $(ZENCOURT_DATA_DIR)/dagster_home

.PHONY: install demo test dev serve bench loadtest soak lint clean dagster-home browser broker

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

dagster-home:
	@mkdir -p "$(DAGSTER_HOME)"
	@cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

## make demo: the sample listing end to end on the embedded defaults (SQLite, local files, local generator)
demo: $(STAMP) dagster-home
	$(BIN)/zencourt demo

# Debian's Chromium for the browser test (zencourt_pipeline_tests/ui): Playwright drives it through
# executable_path, no browser is ever downloaded. Installed here so `make test` alone prepares a fresh machine.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation; \
	fi
	@/usr/bin/chromium --version

# Debian's RabbitMQ for the Celery test (zencourt_pipeline_tests/e2e/test_celery_topology.py): the test
# starts a throwaway node of its own on free ports (zencourt_pipeline_tests/broker.py), never the machine's.
broker:
	@if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends rabbitmq-server; \
	fi

## make test: the whole test suite (what CI runs); prepares Debian's Chromium for the browser test.
## Two pytest-xdist workers (the machine has 2 cores); the tests that start a production topology
## share one xdist group (zencourt_pipeline_tests/conftest.py), so at most one runs at a time.
TEST_WORKERS ?= 2
test: $(STAMP) browser broker
	$(WITH_POSTGRES) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25

## make dev: the Dagster UI on the embedded defaults (http://127.0.0.1:3000); the database is
## upgraded first (the Dagster processes never migrate it)
dev: $(STAMP) dagster-home
	$(BIN)/zencourt db upgrade
	$(BIN)/dagster dev -w workspace.yaml

## make serve: the HTTP service (webhooks, status, cancel, storage) on $$PORT (3001)
serve: $(STAMP)
	$(BIN)/zencourt serve

## make bench: performance benchmarks, one `name: value` line per figure (then the tail latency of a
## batch on the production topology, zencourt_pipeline_tests/latency.py)
bench: $(STAMP)
	$(WITH_POSTGRES) $(BIN)/python -m zencourt_pipeline.bench
	$(WITH_POSTGRES) $(BIN)/python -m zencourt_pipeline_tests.latency --batches 3

## make loadtest: 200 batches of 6 clips on the production topology (Postgres, daemon, fakes)
loadtest: $(STAMP)
	$(WITH_POSTGRES) $(BIN)/python -m zencourt_pipeline_tests.load --batches 200 --clips 6

## make soak: the production topology under a seeded random schedule of faults, invariants checked at the end
## (SOAK_BATCHES=100 SOAK_SEED=1 by default, the full mode; `make soak SOAK_BATCHES=10` is about CI's size;
## SOAK_MUTANT=<name> runs a seeded regression from zencourt_pipeline_tests/soak/mutants: the soak must fail)
SOAK_BATCHES ?= 100
SOAK_SEED ?= 1
SOAK_MUTANT ?=
SOAK_ARGS ?= $(if $(filter-out 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19,$(SOAK_BATCHES)),--full,) $(if $(SOAK_MUTANT),--mutant $(SOAK_MUTANT),)
soak: $(STAMP)
	$(WITH_POSTGRES) $(BIN)/pytest -q -m chaos zencourt_pipeline_tests/e2e/test_crash_chaos.py
	$(WITH_POSTGRES) $(BIN)/python -m zencourt_pipeline_tests.soak --batches $(SOAK_BATCHES) --seed $(SOAK_SEED) $(SOAK_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo

clean:
	rm -rf .zencourt test-output .pytest_cache
