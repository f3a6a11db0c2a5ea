"""Airflow Connections as a credential source: connection -> environment, applied for one
step and restored; a missing connection names SHOPFLOW_AWS_CONN_ID."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ml.core.config import Params
from ml.core.errors import StackError
from ml.stack.credentials import (
    AWS_CONN_ID_SETTING,
    CREDENTIALS_SOURCE_VARIABLE,
    airflow_aws_credentials,
    applied_env,
    aws_connection_env,
)
from ml.stack.preflight import run_checks
from tests.stack.conftest import WRONG_SECRET
from tests.support.services import S3AuthEndpoint

Aws = Callable[..., None]


def connection(login: str, password: str, extra: str | None = None) -> object:
    from airflow.sdk import Connection

    return Connection(
        conn_id="shop_s3", conn_type="aws", login=login, password=password, extra=extra
    )


def test_connection_maps_to_the_variables_the_code_reads() -> None:
    extra = {
        "endpoint_url": "http://minio:9000",
        "region_name": "eu-west-1",
        "aws_session_token": "session-token",
    }
    env = aws_connection_env(
        connection(login="AKIAEXAMPLE", password="secret-key", extra=json.dumps(extra))
    )
    assert env == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-key",
        "AWS_SESSION_TOKEN": "session-token",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
        "AWS_ENDPOINT_URL_S3": "http://minio:9000",
        CREDENTIALS_SOURCE_VARIABLE: f"Airflow connection 'shop_s3' ({AWS_CONN_ID_SETTING})",
    }
    # Keys only: no token (unset, not inherited), endpoint and region left to the environment.
    assert aws_connection_env(connection(login="AK", password="SK")) == {
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "AWS_SESSION_TOKEN": None,
        CREDENTIALS_SOURCE_VARIABLE: f"Airflow connection 'shop_s3' ({AWS_CONN_ID_SETTING})",
    }
    # The Amazon provider's per-service endpoint is honoured too.
    per_service = {"service_config": {"s3": {"endpoint_url": "http://s3.local"}}}
    assert (
        aws_connection_env(connection(login="AK", password="SK", extra=json.dumps(per_service)))[
            "AWS_ENDPOINT_URL_S3"
        ]
        == "http://s3.local"
    )


def test_a_connection_of_another_type_is_refused() -> None:
    from airflow.sdk import Connection

    with pytest.raises(StackError, match=f"not 'aws'.*{AWS_CONN_ID_SETTING}"):
        aws_connection_env(Connection(conn_id="db", conn_type="postgres", login="u"))


def test_applied_env_restores_values_and_absences(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOW_TEST_CHANGED", "before")
    monkeypatch.setenv("SHOPFLOW_TEST_REMOVED", "before")
    monkeypatch.delenv("SHOPFLOW_TEST_ADDED", raising=False)
    values = {
        "SHOPFLOW_TEST_CHANGED": "during",
        "SHOPFLOW_TEST_REMOVED": None,
        "SHOPFLOW_TEST_ADDED": "during",
    }
    with pytest.raises(RuntimeError), applied_env(values):
        assert os.environ["SHOPFLOW_TEST_CHANGED"] == "during"
        assert "SHOPFLOW_TEST_REMOVED" not in os.environ
        assert os.environ["SHOPFLOW_TEST_ADDED"] == "during"
        raise RuntimeError("the step failed")  # restored on errors too
    assert os.environ["SHOPFLOW_TEST_CHANGED"] == "before"
    assert os.environ["SHOPFLOW_TEST_REMOVED"] == "before"
    assert "SHOPFLOW_TEST_ADDED" not in os.environ


def test_connection_from_an_airflow_conn_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHOP_S3",
        json.dumps({"conn_type": "aws", "login": "AKIAFROMAIRFLOW", "password": "airflow-secret"}),
    )
    monkeypatch.setenv(AWS_CONN_ID_SETTING, "shop_s3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "worker-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "worker-token")
    with airflow_aws_credentials() as applied:
        assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAFROMAIRFLOW"
        assert os.environ["AWS_SECRET_ACCESS_KEY"] == "airflow-secret"
        assert "AWS_SESSION_TOKEN" not in os.environ  # not mixed with the connection's keys
        assert applied["AWS_ACCESS_KEY_ID"] == "AKIAFROMAIRFLOW"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "worker-key"
    assert os.environ["AWS_SESSION_TOKEN"] == "worker-token"


def test_a_missing_connection_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONNECTION", raising=False)
    monkeypatch.setenv(AWS_CONN_ID_SETTING, "no_such_connection")
    with pytest.raises(StackError) as raised, airflow_aws_credentials():
        pass
    assert AWS_CONN_ID_SETTING in str(raised.value)
    assert "'no_such_connection'" in str(raised.value)


def test_no_connection_id_keeps_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AWS_CONN_ID_SETTING, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "worker-key")
    with airflow_aws_credentials() as applied:
        assert applied == {}
        assert os.environ["AWS_ACCESS_KEY_ID"] == "worker-key"


def set_shop_s3_connection(
    monkeypatch: pytest.MonkeyPatch, s3: S3AuthEndpoint, secret: str
) -> None:
    """The Airflow connection ``shop_s3`` (an AIRFLOW_CONN_ variable) for the auth-mode
    endpoint, with the given secret."""
    connection = {
        "conn_type": "aws",
        "login": s3.access_key_id,
        "password": secret,
        "extra": {"endpoint_url": s3.url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_S3", json.dumps(connection))


def s3_artifact_params(tmp_path: Path) -> Params:
    """A sqlite tracking store whose artifacts go to the auth-mode bucket."""
    return Params.model_validate(
        {
            "mlflow": {
                "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                "artifact_location": "s3://shopflow-mlflow/artifacts",
            }
        }
    )


@pytest.mark.services
def test_connection_keys_reach_mlflow_and_dvc_clients(
    aws: Aws,
    s3_auth_endpoint: S3AuthEndpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's own keys are wrong; the connection's keys and endpoint make preflight
    pass, and s3fs (DVC's S3 client) finds the endpoint through AWS_ENDPOINT_URL_S3."""
    aws(AWS_SECRET_ACCESS_KEY=WRONG_SECRET, MLFLOW_S3_ENDPOINT_URL=None)
    set_shop_s3_connection(monkeypatch, s3_auth_endpoint, s3_auth_endpoint.secret_access_key)
    params = s3_artifact_params(tmp_path)
    with airflow_aws_credentials("shop_s3"):
        (inside,) = run_checks(params, ["artifacts"])
        import s3fs

        listing = s3fs.S3FileSystem(skip_instance_cache=True).ls("shopflow-dvc")
    assert inside.status == "ok", inside.message
    assert isinstance(listing, list)
    (outside,) = run_checks(params, ["artifacts"])
    assert outside.failed  # back to the worker's wrong secret and no endpoint


@pytest.mark.services
def test_wrong_connection_secret_is_blamed_on_the_connection(
    aws: Aws, s3_auth_endpoint: S3AuthEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_shop_s3_connection(monkeypatch, s3_auth_endpoint, WRONG_SECRET)
    params = s3_artifact_params(tmp_path)
    with airflow_aws_credentials("shop_s3"):
        (result,) = run_checks(params, ["artifacts"])
    assert result.failed
    assert "SignatureDoesNotMatch" in result.message
    assert "the password (secret access key) of Airflow connection 'shop_s3'" in result.message
    assert AWS_CONN_ID_SETTING in result.message
