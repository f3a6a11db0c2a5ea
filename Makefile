# The README's two commands are `make demo` and `make test`; everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
# DVC would start an analytics daemon (a network call) with every command.
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1
# DVC stages call `python -m ml`: make it the venv's python.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install browser demo test test-fast lint lock bench clean-data

install: $(STAMP)

# Reinstall when the dependency pins change; constraints pin every transitive version.
# (pip, not uv: an environment uv installed from the same pins ran the same tests 1.8x slower.)
$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m ml.orchestration.demo

# --durations=25: the slowest tests in every CI log. pytest's own exit code (e.g. 5: no tests
# collected) fails make, hence .ci/run. pytest-xdist: one test process per CPU (at most
# TEST_WORKERS), each test file in one process (its module fixtures are built once).
TEST_WORKERS ?= 4
test: $(STAMP) browser
	$(BIN)/pytest -q --durations=25 -n auto --maxprocesses $(TEST_WORKERS) --dist loadfile

# Debian's chromium for tests/browser (apt-get when it is missing); playwright is a dev dependency.
browser: $(STAMP)
	bash scripts/install-browser.sh

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not real and not services and not browser" -n auto --maxprocesses $(TEST_WORKERS) --dist loadfile

# ruff, formatting, types, and the architecture (import-linter contracts in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# dvc.lock as committed: `dvc repro` of every stage in a clean copy of the tree (its own MLflow
# store); commit it with the code/params change (tests/pipeline/test_dvc_lock.py checks).
lock: $(STAMP)
	bash scripts/refresh-dvc-lock.sh

# The serving load bench needs locust (the optional `bench` extra), pinned like everything else.
bench: $(STAMP)
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev,bench]"
	$(BIN)/python bench/intent_bench.py
	$(BIN)/python bench/intent_fast_path.py
	$(BIN)/python bench/recommender_bench.py
	$(BIN)/python bench/hwu64_quality.py
	$(BIN)/python bench/amazon_quality.py
	$(BIN)/python bench/pii_scrubber.py
	$(BIN)/python bench/pii_model_impact.py
	$(BIN)/python bench/serving_load.py

clean-data:
	rm -rf data models reports mlflow.db mlartifacts airflow_home
