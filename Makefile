# Two commands on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
PYTHON      ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
                 command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
                 2>/dev/null && { echo $$p; break; }; done)

export DAGSTER_HOME      ?= $(CURDIR)/.dagster_home
export LAKE_ROOT         ?= $(CURDIR)/.lake
export LAKE_SECRETS_FILE ?= $(CURDIR)/dev.secrets
export SPARK_LOCAL_IP    ?= 127.0.0.1
export PYSPARK_PYTHON    := $(CURDIR)/$(BIN)/python
SPARK_CONNECT_PORT       ?= 15002
SERVE_PORT               ?= 5433

.PHONY: help setup system run test lint clean

help:
	@echo "make run   - set up, simulate a small landing zone, start the Dagster UI and daemon"
	@echo "make test  - set up and run the tests"
	@echo "make lint  - ruff over the whole checkout (CI runs it before the tests)"

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.11+ is required (python3 --version)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

system:
	@scripts/check_system.sh

setup: system $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

run: setup
	$(BIN)/lakehouse validate metadata
	@# The backfill covers the two hours before this one; the live dripper goes on from now,
	@# so the two runs never describe the same bed at the same time.
	$(BIN)/lakehouse simulate --facilities 10 --hours 2 --rate 40 --faults 0.05 \
	    --size-scale 0.05 --seed 7 --quiet --start "$$($(BIN)/python -c 'import datetime as d; \
	    n = d.datetime.now(d.UTC).replace(minute=0, second=0, microsecond=0); \
	    print((n - d.timedelta(hours=2)).isoformat())')"
	@# One foreground process runs the rest (Spark Connect, the live dripper, the SQL endpoint,
	@# the alert inbox, dagster dev), logs to $(DAGSTER_HOME)/lakehouse-logs, and stops them all on
	@# SIGTERM or Ctrl-C; `exec` hands it make's signals.
	@exec $(BIN)/lakehouse run --connect-port $(SPARK_CONNECT_PORT) --serve-port $(SERVE_PORT)

test: setup
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf .lake .dagster_home .pytest_cache .hypothesis spark-warehouse
