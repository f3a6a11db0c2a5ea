"""Credentials from an Airflow Connection (SHOPFLOW_AWS_CONN_ID) on an S3 endpoint that checks
keys (moto in auth mode): right keys sync the data; a wrong secret stops the run at preflight,
before anything is trained, registered or promoted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.dvc import init_intent_dvc_project
from tests.support.services import S3AuthEndpoint

pytestmark = pytest.mark.services

CONN_ID = "shop_s3"


@pytest.fixture
def project(
    tiny_project: Path, s3_auth_endpoint: S3AuthEndpoint, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """tiny_project as a DVC repo whose remote is a bucket on the auth-mode endpoint. Neither
    the remote's config nor the worker's environment holds keys or the endpoint: only the
    connection does."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "MLFLOW_S3_ENDPOINT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tiny_project.parent / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tiny_project.parent / "no-aws-keys"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return init_intent_dvc_project(tiny_project, f"s3://shopflow-dvc/{tiny_project.parent.name}")


def set_connection(monkeypatch: pytest.MonkeyPatch, s3: S3AuthEndpoint, secret: str) -> None:
    connection = {
        "conn_type": "aws",
        "login": s3.access_key_id,
        "password": secret,
        "extra": {"endpoint_url": s3.url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))


def run_intent(project: Path) -> tuple[Any, dict[str, str]]:
    from ml.orchestration.dags import build_retrain_dag
    from ml.orchestration.settings import OrchestrationSettings

    settings = OrchestrationSettings(
        project_dir=project, retries=0, preprocess_mode="dvc", aws_conn_id=CONN_ID
    )
    run = build_retrain_dag("intent", settings).test(run_conf={})
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def registered_versions(project: Path) -> list[Any]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{project}/mlflow.db"  # registry too: mlflow keeps the last one globally
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return list(client.search_model_versions("name='intent-classifier'"))


def test_connection_keys_sync_the_data_version(
    project: Path,
    s3_auth_endpoint: S3AuthEndpoint,
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    set_connection(monkeypatch, s3_auth_endpoint, s3_auth_endpoint.secret_access_key)
    run, states = run_intent(project)
    assert str(run.state) == "success", states
    assert states["preflight"] == states["pull_data"] == states["push_data"] == "success"
    # The data is in the bucket, and the keys were applied for the steps only.
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_auth_endpoint.url,
        aws_access_key_id=s3_auth_endpoint.access_key_id,
        aws_secret_access_key=s3_auth_endpoint.secret_access_key,
        region_name="us-east-1",
    )
    listed = s3.list_objects_v2(Bucket="shopflow-dvc", Prefix=project.parent.name)
    assert listed.get("KeyCount", 0) >= 4  # train/val/test/label map (+ the .dir listing)


def test_a_wrong_connection_secret_stops_the_run_before_any_work(
    project: Path,
    s3_auth_endpoint: S3AuthEndpoint,
    airflow_db: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ml.cli import run_step
    from ml.core.errors import StackError
    from ml.stack.credentials import airflow_aws_credentials

    set_connection(monkeypatch, s3_auth_endpoint, "not-the-secret")
    run, states = run_intent(project)
    assert str(run.state) == "failed"
    assert states["preflight"] == "failed"
    for task_id in ("ingest", "pull_data", "train", "push_data", "gate", "promote", "summary"):
        assert states[task_id] == "upstream_failed", (task_id, states)
    assert registered_versions(project) == []
    assert not (project / "data").exists()
    # What the task log says: the check, the connection and the setting to fix.
    cwd = os.getcwd()
    os.chdir(project)
    try:
        with airflow_aws_credentials(CONN_ID), pytest.raises(StackError) as failed:
            run_step(["preflight", "--check", "dvc"])
    finally:
        os.chdir(cwd)
    message = str(failed.value)
    assert "SignatureDoesNotMatch" in message
    assert f"Airflow connection '{CONN_ID}' (SHOPFLOW_AWS_CONN_ID)" in message
