"""The DAG files parse, and their structure, schedules, defaults and Params are as specified."""

from __future__ import annotations

import copy
import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

RETRAIN = ("intent_retrain", "recommender_retrain")


@pytest.fixture(scope="module")
def dagbag(repo_root: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(repo_root / "dags"))


def test_dag_files_import_without_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {*RETRAIN, "drift_monitor", "shop_ingest"}


@pytest.mark.parametrize("dag_id", RETRAIN)
def test_retrain_wiring(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    chain = ["preflight", "ingest", "validate", "preprocess", "train", "evaluate", "gate", "decide"]
    for upstream, downstream in itertools.pairwise(chain):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)
    assert dag.get_task("decide").downstream_task_ids == {"promote", "reject"}
    assert dag.get_task("summary").upstream_task_ids >= {"promote", "reject", "train", "gate"}
    assert dag.get_task("summary").trigger_rule == "none_failed_min_one_success"
    assert type(dag.get_task("decide")).__name__ == "_BranchPythonDecoratedOperator"


@pytest.mark.parametrize("dag_id", RETRAIN)
def test_retrain_defaults(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    for task_id in ("ingest", "validate", "preprocess"):
        assert dag.get_task(task_id).pool == "dvc", task_id
    # Data problems are not transient: no retry on validation.
    assert dag.get_task("validate").retries == 0
    for task_id in ("preflight", "train", "evaluate"):
        task = dag.get_task(task_id)
        assert task.retries == 2
        assert task.retry_exponential_backoff == 2.0
        assert task.retry_delay == timedelta(seconds=60)
        assert task.max_retry_delay == timedelta(seconds=1800)


def test_schedules(dagbag: Any) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    expected = {"intent_retrain": "0 3 * * 1", "recommender_retrain": "0 4 * * 1"}
    for dag_id, cron in expected.items():
        timetable = dagbag.dags[dag_id].timetable
        assert isinstance(timetable, AssetOrTimeSchedule)
        assert timetable.timetable.expression == cron
        family = dag_id.removesuffix("_retrain")
        assert f"uri='shopflow://drift/{family}'" in str(timetable.asset_condition)
    monitor = dagbag.dags["drift_monitor"].timetable
    assert isinstance(monitor, AssetOrTimeSchedule)
    for dataset in ("catalog", "events", "utterances"):
        assert f"uri='shopflow://validated/{dataset}'" in str(monitor.asset_condition)
    # shop_ingest announces the validated data the monitor listens to.
    outlets = dagbag.dags["shop_ingest"].get_task("validate").outlets
    assert {a.uri for a in outlets} == {
        "shopflow://validated/catalog",
        "shopflow://validated/events",
        "shopflow://validated/utterances",
    }
    # A retrain DAG must not announce validated data itself (it would re-trigger the monitor).
    assert not dagbag.dags["intent_retrain"].get_task("validate").outlets


def test_drift_monitor_branches_per_family(dagbag: Any) -> None:
    dag = dagbag.dags["drift_monitor"]
    for family in ("intent", "recommender"):
        assert dag.get_task(f"decide_{family}").downstream_task_ids == {
            f"flag_{family}",
            f"no_drift_{family}",
        }
        assert [a.uri for a in dag.get_task(f"flag_{family}").outlets] == [
            f"shopflow://drift/{family}"
        ]


def test_train_pool_and_queue_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.orchestration.dags import build_retrain_dag
    from ml.orchestration.settings import OrchestrationSettings

    monkeypatch.setenv("SHOPFLOW_TRAIN_POOL", "gpu")
    monkeypatch.setenv("SHOPFLOW_TRAIN_QUEUE", "gpu")
    monkeypatch.setenv("SHOPFLOW_INTENT_SCHEDULE", "0 0 * * *")
    dag = build_retrain_dag("intent", OrchestrationSettings.from_env())
    assert dag.get_task("train").pool == "gpu"
    assert dag.get_task("train").queue == "gpu"
    assert dag.get_task("evaluate").pool == "default_pool"
    assert dag.timetable.timetable.expression == "0 0 * * *"


GOOD = {"epochs": 2, "learning_rate": 0.001, "sample_size": 100, "overrides": ["a.b=1"]}


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"epochs": "three"},
        {"learning_rate": 0},
        {"learning_rate": 5},
        {"sample_size": -1},
        {"force_promote": "yes"},
        {"dry_run": 1},
        {"overrides": ["no equals sign"]},
        {"overrides": "a.b=1"},
    ],
)
@pytest.mark.parametrize("dag_id", RETRAIN)
def test_bad_params_are_refused(dagbag: Any, dag_id: str, bad: dict[str, Any]) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags[dag_id].params)
    with pytest.raises(ParamValidationError):
        params.update(bad)  # each value is checked against its Param's JSON schema


@pytest.mark.parametrize("dag_id", RETRAIN)
def test_good_params_are_accepted(dagbag: Any, dag_id: str) -> None:
    params = dagbag.dags[dag_id].params
    assert params.validate()["dry_run"] is False  # defaults are valid
    resolved = {key: params.get_param(key).resolve(value=value) for key, value in GOOD.items()}
    assert resolved == GOOD
