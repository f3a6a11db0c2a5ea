"""MLflow run lifecycle of a step (ml.stack.tracking.step_run): named, tagged, never left RUNNING.

In-process, on a throw-away sqlite store; the kill of a real training process is in
tests/intent/test_run_lifecycle.py, the Airflow task context in
tests/airflow/test_run_lifecycle.py.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ml.core.config import MlflowConfig
from ml.stack.tracking import (
    AIRFLOW_ENV,
    END_REASON_TAG,
    AirflowTask,
    StepTerminated,
    close_task_runs,
    configure_mlflow,
    end_status,
    record_model_version,
    run_name,
    step_run,
)

TASK = AirflowTask("intent_retrain", "manual__2026-12-07T03:00:00+00:00", "train", 1)


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MlflowConfig, Any]]:
    import mlflow

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", *AIRFLOW_ENV.values()):
        monkeypatch.delenv(name, raising=False)
    cfg = MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure_mlflow(cfg, "lifecycle")
    yield cfg, mlflow.MlflowClient(tracking_uri=cfg.tracking_uri)
    while mlflow.active_run():
        mlflow.end_run()


def _in_task(monkeypatch: pytest.MonkeyPatch, task: AirflowTask) -> None:
    for name, value in task.env().items():
        monkeypatch.setenv(name, value)


def test_names_outside_and_inside_airflow() -> None:
    started = datetime(2026, 12, 7, 3, 0, 5, tzinfo=UTC)
    assert run_name("intent", "train", None, started) == "train-intent-20261207T030005Z"
    assert run_name("intent", "train", None, started, "3") == "train-intent-v3-20261207T030005Z"
    assert (
        run_name("recommender", "train", TASK, started, "2")
        == "train-recommender-v2 intent_retrain/manual__2026-12-07T03:00:00+00:00 try1"
    )


def test_end_status_of_each_way_a_step_stops() -> None:
    class AirflowTaskTimeout(BaseException):  # matched by name: ml does not import Airflow
        pass

    assert end_status(StepTerminated(signal.SIGTERM)) == ("KILLED", "terminated by SIGTERM")
    assert end_status(KeyboardInterrupt())[0] == "KILLED"
    assert end_status(AirflowTaskTimeout())[0] == "KILLED"
    assert end_status(ValueError("bad input\nmore")) == ("FAILED", "ValueError: bad input")


def test_a_finished_step_is_named_tagged_and_finished(store: tuple[MlflowConfig, Any]) -> None:
    _, client = store
    with step_run("intent") as run:
        record_model_version(run, "intent-classifier", "4")
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert re.fullmatch(r"train-intent-v4-\d{8}T\d{6}Z", got.info.run_name)
    tags = got.data.tags
    assert tags["shopflow.family"] == "intent" and tags["shopflow.step"] == "train"
    assert tags["shopflow.model_version"] == "4"
    assert not any(key.startswith("airflow.") for key in tags)


def test_an_exception_ends_the_run_failed(store: tuple[MlflowConfig, Any]) -> None:
    _, client = store
    with pytest.raises(RuntimeError, match="out of memory"), step_run("intent") as run:
        raise RuntimeError("out of memory")
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags[END_REASON_TAG] == "RuntimeError: out of memory"


def test_sigterm_ends_the_run_killed_and_restores_the_handler(
    store: tuple[MlflowConfig, Any],
) -> None:
    _, client = store
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(StepTerminated) as stopped, step_run("intent") as run:
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.code == 143
    got = client.get_run(run.info.run_id)
    assert got.info.status == "KILLED"
    assert got.data.tags[END_REASON_TAG] == "terminated by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_retry_closes_the_run_an_earlier_try_left_running(
    store: tuple[MlflowConfig, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    _, client = store
    experiment = mlflow.get_experiment_by_name("lifecycle").experiment_id
    # Try 1's process was killed outright (SIGKILL, out of memory): its run stayed RUNNING.
    orphan = client.create_run(experiment, tags=TASK.tags(), run_name="train-intent try1")
    other_task = client.create_run(experiment, tags={**TASK.tags(), "airflow.task_id": "evaluate"})
    retry = AirflowTask(TASK.dag_id, TASK.run_id, TASK.task_id, 2)
    _in_task(monkeypatch, retry)
    with step_run("intent") as run:
        pass
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == f"train-intent {TASK.dag_id}/{TASK.run_id} try2"
    assert got.data.tags["airflow.try_number"] == "2"
    assert got.data.tags["airflow.run_id"] == TASK.run_id
    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert client.get_run(other_task.info.run_id).info.status == "RUNNING"  # not this task's


def test_close_task_runs_ends_what_a_failed_try_left_running(
    store: tuple[MlflowConfig, Any],
) -> None:
    import mlflow

    cfg, client = store
    experiment = mlflow.get_experiment_by_name("lifecycle").experiment_id
    left = client.create_run(experiment, tags=TASK.tags())
    later_try = client.create_run(experiment, tags={**TASK.tags(), "airflow.try_number": "2"})
    assert close_task_runs(cfg, "lifecycle", TASK, reason="killed") == [left.info.run_id]
    assert client.get_run(left.info.run_id).info.status == "FAILED"
    assert client.get_run(left.info.run_id).data.tags[END_REASON_TAG] == "killed"
    assert client.get_run(later_try.info.run_id).info.status == "RUNNING"
    assert close_task_runs(cfg, "no-such-experiment", TASK) == []
