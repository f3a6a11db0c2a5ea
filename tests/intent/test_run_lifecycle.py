"""A training run outside Airflow (CLI, DVC): a readable name, the registered version in it,
and never left RUNNING: SIGTERM ends it KILLED, an exception FAILED."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.intent.conftest import tiny_params, write_processed

REPO_ROOT = Path(__file__).resolve().parents[2]


def _runs(db: Path) -> list[dict[str, Any]]:
    """The runs in a sqlite MLflow store, read with sqlite3 (no second MLflow client racing the
    training process's schema migration); [] until the store has its tables."""
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute("SELECT run_uuid, name, status FROM runs").fetchall()
            out = []
            for run_id, name, status in rows:
                tags = dict(
                    con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))
                )
                n_metrics = con.execute(
                    "SELECT COUNT(*) FROM metrics WHERE run_uuid = ?", (run_id,)
                ).fetchone()[0]
                out.append(
                    {
                        "id": run_id,
                        "name": name,
                        "status": status,
                        "tags": tags,
                        "metrics": n_metrics,
                    }
                )
            return out
    except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
        return []


def test_sigterm_to_python_m_ml_train_ends_its_run_killed(
    tmp_path: Path, tiny_bert_dir: Path
) -> None:
    params = tiny_params(tmp_path, tiny_bert_dir)
    write_processed(params.paths.processed, n_train=40)
    db = tmp_path / "mlflow.db"
    sets = {
        "paths.processed": params.paths.processed,
        "paths.models": params.paths.models,
        "paths.reports": params.paths.reports,
        "intent.train.model_path": tiny_bert_dir,
        # Enough epochs that training is still going when the signal comes.
        "intent.train.epochs": 100,  # the most params.yaml allows
        "intent.train.early_stopping_patience": 200,
        "intent.train.batch_size": 8,
        "intent.train.max_length": 32,
        "mlflow.tracking_uri": f"sqlite:///{db}",
        "mlflow.artifact_location": (tmp_path / "mlartifacts").as_uri(),
    }
    argv = [sys.executable, "-m", "ml", "train", "intent", "--params", str(tmp_path / "none.yaml")]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SHOPFLOW_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    log_file = tmp_path / "train.log"
    with log_file.open("w") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            # Wait until the run exists, is RUNNING and training has logged a metric.
            while not any(r["status"] == "RUNNING" and r["metrics"] for r in _runs(db)):
                assert proc.poll() is None, f"training ended early:\n{log_file.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no RUNNING run with metrics in 300 s"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log_file.read_text()
    assert code == 128 + signal.SIGTERM, output[-3000:]
    runs = _runs(db)
    assert len(runs) == 1, runs
    run = runs[0]
    assert run["status"] == "KILLED", output[-3000:]
    assert run["tags"]["shopflow.end_reason"] == "terminated by SIGTERM"
    assert re.fullmatch(r"train-intent-\d{8}T\d{6}Z", run["name"])
    assert run["tags"]["shopflow.family"] == "intent"
    assert not [r for r in runs if r["status"] == "RUNNING"]
    assert "ended KILLED: terminated by SIGTERM" in output


def test_a_cli_training_run_is_named_with_its_time_and_version(
    tmp_path: Path, make_params: Any
) -> None:
    import mlflow

    from ml.models.intent.train import train_intent

    params = make_params(tmp_path)
    summary = train_intent(params, params.paths.processed, params.paths.models / "intent")
    run = mlflow.MlflowClient(params.mlflow.tracking_uri).get_run(summary["registration"]["run_id"])
    assert run.info.status == "FINISHED"
    assert re.fullmatch(r"train-intent-v1-\d{8}T\d{6}Z", run.info.run_name)
    assert run.data.tags["shopflow.model_version"] == "1"
    assert run.data.tags["shopflow.model_name"] == params.mlflow.intent_model_name


def test_a_failing_training_ends_its_run_failed(
    tmp_path: Path, make_params: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from ml.models.intent import train

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(train, "fit_intent", broken)
    params = make_params(tmp_path)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        train.train_intent(params, params.paths.processed, params.paths.models / "intent")
    client = mlflow.MlflowClient(params.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(params.mlflow.intent_experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["shopflow.end_reason"] == "RuntimeError: CUDA out of memory"
