"""shop_ingest with ``ingest.source: s3`` through ``dag.test()`` against a moto S3 server: the
``wait_for_partitions`` sensor (reschedule mode) succeeds once a partition is in the bucket and
ingest + validate pick it up; with nothing there it keeps waiting and never succeeds."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml.core.config.data import GeneratorConfig
from ml.data.synthetic import generate_world
from tests.support.services import dummy_s3_client, use_dummy_s3_keys

pytestmark = pytest.mark.services

PREFIX = "incoming"


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "SHOPFLOW_AWS_CONN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    use_dummy_s3_keys(monkeypatch)
    name = f"shop-{uuid.uuid4().hex[:12]}"
    dummy_s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def use_s3_source(project: Path, endpoint: str, bucket: str, **sensor: Any) -> dict[str, Any]:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ingest"] = {
        "source": "s3",
        "s3": {"bucket": bucket, "prefix": PREFIX, "endpoint_url": endpoint, **sensor},
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def upload_one_shop_day(params: dict[str, Any], tmp_path: Path, endpoint: str, bucket: str) -> int:
    """Day 0 of the tiny synthetic shop (all three datasets) uploaded as the shop would."""
    out = tmp_path / "shop-export"
    generate_world(GeneratorConfig(**params["generator"]), out, first_day=0, n_days=1)
    files = sorted(p for p in out.rglob("part-*.csv"))
    client = dummy_s3_client(endpoint)
    for file in files:
        client.upload_file(str(file), bucket, f"{PREFIX}/{file.relative_to(out).as_posix()}")
    return len(files)


def run_shop_ingest(project: Path) -> tuple[Any, dict[str, str]]:
    from ml.orchestration.dags import build_shop_ingest_dag
    from ml.orchestration.settings import OrchestrationSettings

    dag = build_shop_ingest_dag(OrchestrationSettings(project_dir=project, retries=0))
    assert dag.task_ids == ["wait_for_partitions", "ingest", "validate"]
    sensor = dag.get_task("wait_for_partitions")
    assert sensor.mode == "reschedule"
    run = dag.test(run_conf={})
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def return_value(run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == "return_value",
            )
        ).one()
        return XComModel.deserialize_value(row)


def test_sensor_succeeds_on_a_new_partition_and_ingest_picks_it_up(
    tiny_project: Path, airflow_db: Path, s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    params = use_s3_source(
        tiny_project, s3_endpoint, bucket, sensor_poke_interval_s=1, sensor_timeout_s=120
    )
    uploaded = upload_one_shop_day(params, tmp_path, s3_endpoint, bucket)

    run, states = run_shop_ingest(tiny_project)
    assert states == {
        "wait_for_partitions": "success",
        "ingest": "success",
        "validate": "success",
    }, states
    keys = return_value(run, "wait_for_partitions")
    assert len(keys) == uploaded and all(k.startswith(f"{PREFIX}/") for k in keys)
    ingested = return_value(run, "ingest")
    assert ingested["source"] == "s3" and ingested["new_objects"] == uploaded
    assert ingested["announced_by_sensor"] == keys
    validated = tiny_project / "data" / "validated"
    for dataset in ("catalog", "events", "utterances"):
        assert (validated / dataset / "date=2026-11-01" / "part-000.csv").is_file()


def test_sensor_without_a_new_partition_does_not_succeed(
    tiny_project: Path, airflow_db: Path, s3_endpoint: str, bucket: str
) -> None:
    use_s3_source(
        tiny_project,
        s3_endpoint,
        bucket,
        sensor_poke_interval_s=1,
        sensor_timeout_s=2,
        sensor_soft_fail=True,
    )
    run, states = run_shop_ingest(tiny_project)
    # soft_fail: the run that saw nothing arrive ends skipped, and nothing was ingested.
    assert states == {
        "wait_for_partitions": "skipped",
        "ingest": "skipped",
        "validate": "skipped",
    }, states
    assert not (tiny_project / "data" / "landing" / "utterances").exists()
    # It waited in reschedule mode (the worker slot given back between pokes), not in a loop.
    assert reschedules(run, "wait_for_partitions") >= 1


def reschedules(run: Any, task_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(TaskReschedule)
                .join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id)
                .where(TaskInstance.run_id == run.run_id, TaskInstance.task_id == task_id)
            )
            or 0
        )
