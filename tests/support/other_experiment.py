"""Shared by the intent and recommender "evaluate after training in another experiment" tests:
run ``python -m ml evaluate <family>`` in a new process with the default settings, then check
where its numbers landed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow

REPO_ROOT = Path(__file__).resolve().parents[2]


def evaluate_in_a_new_process(family: str, params_file: Path, tmp_path: Path) -> None:
    """``python -m ml evaluate <family> --params <file>`` with no MLflow state of this process,
    from another folder, so that MLflow's default store (./mlflow.db) is not the one params
    names; it must succeed and leave no ./mlflow.db there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHOPFLOW_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    evaluate = [sys.executable, "-m", "ml", "evaluate", family, "--params", str(params_file)]
    (elsewhere := tmp_path / "elsewhere").mkdir()
    done = subprocess.run(evaluate, cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (elsewhere / "mlflow.db").exists()  # params' store, not MLflow's default


def assert_evaluation_in_training_run(
    tracking_uri: str, experiment: str, default_experiment: str, metric_names: set[str]
) -> None:
    """The one training run in ``experiment`` finished with the evaluation's metrics and
    metrics.json; the default experiment has no run."""
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FINISHED"
    assert metric_names <= set(run.data.metrics)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert "evaluation/metrics.json" in logged
    default = client.get_experiment_by_name(default_experiment)
    assert default is None or client.search_runs([default.experiment_id]) == []
