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

.PHONY: install demo test test-fast lint bench clean-data

install: $(STAMP)

# Reinstall when the dependency pins change; constraints pin every transitive version.
$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m ml.demo

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not real and not services"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/intent_bench.py
	$(BIN)/python bench/recommender_bench.py

clean-data:
	rm -rf data models reports mlflow.db mlartifacts airflow_home
