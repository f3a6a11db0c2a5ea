# The README's two commands are `make demo` and `make test`; everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export PYTHONUNBUFFERED := 1
# DVC stages call `python -m ml`: make it the venv's python.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install demo test test-fast lint lock bench clean-data

install: $(STAMP)

# Reinstall when the dependency pins change; constraints pin every transitive version.
$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m ml.demo

# --durations=25: the slowest tests in every CI log. pytest's own exit code (e.g. 5: no tests
# collected) fails make, hence .ci/run.
test: $(STAMP)
	$(BIN)/pytest -q --durations=25

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not real and not services"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# dvc.lock as committed: `dvc repro` of every stage in a clean copy of the tree (its own MLflow
# store); commit it with the code/params change (tests/pipeline/test_dvc_lock.py checks).
lock: $(STAMP)
	bash scripts/refresh-dvc-lock.sh

bench: $(STAMP)
	$(BIN)/python bench/intent_bench.py
	$(BIN)/python bench/recommender_bench.py

clean-data:
	rm -rf data models reports mlflow.db mlartifacts airflow_home
