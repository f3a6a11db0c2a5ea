"""shopflow: keeps an online shop's intent classifier and recommender fresh.

Packages by responsibility, each importing only from the layers below it (checked by
import-linter, ``[tool.importlinter]`` in pyproject.toml)::

    orchestration   Airflow DAG factories, trigger-form Params, task runtime, containers, demo
    release         the gate (rules, scoring, reports, behavioural checks), registry aliases
    monitoring      drift of new data against the champion's training data
    models          encoders, intent/ and recommender/ (model, train, evaluate, pyfunc, predict)
    preprocess      validated partitions -> model-ready splits
    validation      read rules, Great Expectations suites, accept or quarantine partitions
    data            the synthetic shop, corruption knobs, external adapters, ingest
    stack           MLflow tracking, model store, S3 errors, preflight, DVC data versions
    core            config (every setting), schemas, errors, model families, metrics, stats

``python -m ml <step>`` (ml.cli) dispatches to each package's ``cli.py``.
"""

__version__ = "0.1.0"
