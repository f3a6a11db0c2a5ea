"""The train task's MLflow runs carry the Airflow task instance (DAG id, DAG run id, task id,
try number) in their names and tags; a failed try's run ends FAILED and the retry's FINISHED;
the task's on-failure callback closes what a killed process left RUNNING."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.intent.conftest import write_processed


def _intent_runs(project: Path) -> list[Any]:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("intent-classifier")
    runs = client.search_runs([experiment.experiment_id])
    return sorted(runs, key=lambda r: r.info.start_time)


def test_train_task_runs_are_named_and_tagged_with_the_task_instance(
    tiny_project: Path, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.models.intent import train as intent_train
    from ml.orchestration.dags import build_retrain_dag
    from ml.orchestration.settings import OrchestrationSettings

    write_processed(tiny_project / "data" / "processed")  # what preprocess would have written
    real_fit = intent_train.fit_intent
    tries: list[int] = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("the worker lost its GPU")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(intent_train, "fit_intent", fails_once)
    settings = OrchestrationSettings(project_dir=tiny_project, retries=1, retry_delay_s=0)
    dag = build_retrain_dag("intent", settings)
    # Only train runs; every other task is marked successful.
    dag_run = dag.test(mark_success_pattern=r"(?!train$).*")
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states["train"] == "success", states
    train_ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "train")
    assert train_ti.try_number == 2

    first, second = _intent_runs(tiny_project)
    where = f"intent_retrain/{dag_run.run_id}"
    for run, try_number in ((first, 1), (second, 2)):
        tags = run.data.tags
        assert tags["airflow.dag_id"] == "intent_retrain"
        assert tags["airflow.run_id"] == dag_run.run_id
        assert tags["airflow.task_id"] == "train"
        assert tags["airflow.try_number"] == str(try_number)
        assert tags["shopflow.family"] == "intent"
    assert first.info.status == "FAILED"
    assert first.info.run_name == f"train-intent {where} try1"
    assert first.data.tags["shopflow.end_reason"] == "RuntimeError: the worker lost its GPU"
    assert second.info.status == "FINISHED"
    assert second.info.run_name == f"train-intent-v1 {where} try2"
    assert second.data.tags["shopflow.model_version"] == "1"


def test_failure_callback_closes_the_run_a_killed_try_left_running(
    tiny_project: Path, airflow_db: Path
) -> None:
    import mlflow

    from ml.core.families import get_family
    from ml.orchestration.runtime import close_mlflow_runs_callback
    from ml.orchestration.settings import OrchestrationSettings
    from ml.stack.tracking import AirflowTask

    client = mlflow.MlflowClient(f"sqlite:///{tiny_project}/mlflow.db")
    experiment = client.create_experiment("intent-classifier")
    task = AirflowTask("intent_retrain", "manual__2026-12-07T03:00:00+00:00", "train", 1)
    # The try's process was killed outright (out of memory): nothing ended its run.
    orphan = client.create_run(experiment, tags=task.tags())
    settings = OrchestrationSettings(project_dir=tiny_project, retries=0)
    callback = close_mlflow_runs_callback(get_family("intent"), settings)
    context = {
        "ti": SimpleNamespace(
            dag_id=task.dag_id, run_id=task.run_id, task_id="train", try_number=1
        ),
        "params": {},
        "exception": RuntimeError("Task received SIGKILL"),
    }
    callback(context)
    got = client.get_run(orphan.info.run_id)
    assert got.info.status == "FAILED"
    assert "SIGKILL" in got.data.tags["shopflow.end_reason"]
    # A store that cannot be reached is logged, never raised from a callback.
    broken = OrchestrationSettings(project_dir=tiny_project / "missing", retries=0)
    close_mlflow_runs_callback(get_family("intent"), broken)(context)
