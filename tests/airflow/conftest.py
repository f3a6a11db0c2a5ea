"""Airflow test set-up: a throw-away AIRFLOW_HOME (SQLite metadata) and a tiny project.

The environment is set at import time, before any test imports Airflow (its configuration is
read once, on first import).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="shopflow-airflow-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"


def tiny_params(model_dir: Path) -> dict:
    """A small-but-real configuration: a few dozen users and items, a 2-layer random BERT,
    one epoch, gates that a first run passes."""
    return {
        "seed": 42,
        "generator": {
            "n_items": 60,
            "n_categories": 5,
            "n_users": 40,
            "utterances_per_day": 200,
            "days": 3,
        },
        "validation": {"data_docs": False, "min_per_label": 0},
        "intent": {
            "train": {"model_path": str(model_dir), "epochs": 1, "batch_size": 32, "max_length": 32}
        },
        "recommender": {
            "train": {
                "text_model_path": str(model_dir),
                "epochs": 1,
                "dim": 16,
                "n_user_clusters": 2,
            }
        },
        "gate": {
            "bootstrap_resamples": 1000,
            "latency_rows": 16,
            "intent": {"primary": {"metric": "macro_f1", "min_value": 0.0, "min_abs_change": 0.0}},
            "recommender": {
                "primary": {"metric": "ndcg@10", "min_value": 0.0, "min_abs_change": 0.0}
            },
        },
    }


@pytest.fixture
def tiny_project(tmp_path: Path, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder with a tiny params.yaml; the DAGs are pointed at it."""
    project = tmp_path / "project"
    project.mkdir()
    params = tiny_params(tiny_bert_dir)
    # Absolute: MLflow caches a store per URI, so a relative sqlite:///mlflow.db would keep
    # pointing at the previous test's project inside one pytest process.
    params["mlflow"] = {"tracking_uri": f"sqlite:///{project}/mlflow.db"}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("SHOPFLOW_PROJECT_DIR", str(project))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return project


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """`airflow db migrate` once per session on the throw-away SQLite database."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=dict(os.environ),
    )
    return AIRFLOW_HOME
