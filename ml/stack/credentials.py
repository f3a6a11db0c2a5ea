"""Credentials from an Airflow Connection, applied as the environment variables the code reads.

Credentials come from the environment or from Airflow Connections, never from the repository.
An Airflow ``aws`` connection (login = access key id, password = secret key, extra:
``endpoint_url``, ``region_name``, ``aws_session_token``) becomes, for the duration of one step:

    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN   boto3, MLflow, DVC (s3fs)
    AWS_DEFAULT_REGION                                              boto3, aiobotocore
    MLFLOW_S3_ENDPOINT_URL                                          MLflow's S3 artifact client
    AWS_ENDPOINT_URL_S3                                             botocore/aiobotocore: DVC's
                                                                    s3fs when the remote has no
                                                                    endpointurl of its own

``SHOPFLOW_AWS_CONN_ID`` names the connection; unset means "use the environment as it is".
Airflow is imported only when a connection is looked up.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ml.core.errors import StackError

AWS_CONN_ID_SETTING = "SHOPFLOW_AWS_CONN_ID"
# A connection replaces these as a set: a session token left over from the worker's own
# environment must not be sent along with the connection's long-term keys.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
ENDPOINT_VARIABLES = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
# Set while a connection's keys are in the environment, so an S3 error names the connection
# (ml.stack.preflight) rather than AWS_* variables nobody set by hand.
CREDENTIALS_SOURCE_VARIABLE = "SHOPFLOW_AWS_CREDENTIALS_SOURCE"


def _extra(connection: Any) -> dict[str, Any]:
    extra = getattr(connection, "extra_dejson", None)
    if isinstance(extra, dict):
        return extra
    raw = getattr(connection, "extra", None) or "{}"
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise StackError(
            f"Airflow connection '{getattr(connection, 'conn_id', '?')}': extra is not JSON "
            f"({exc}); fix the connection named by {AWS_CONN_ID_SETTING}"
        ) from exc
    return parsed if isinstance(parsed, dict) else {}


def aws_connection_env(connection: Any) -> dict[str, str | None]:
    """The environment an Airflow ``aws`` connection stands for; None means "unset".

    Keys the connection does not hold are unset (falling back to the default AWS chain, e.g. an
    instance role); endpoint and region are left alone unless the connection sets them, so a
    deployment may keep those in the worker's environment.
    """
    conn_id = getattr(connection, "conn_id", "?")
    conn_type = getattr(connection, "conn_type", None)
    if conn_type not in (None, "", "aws"):
        raise StackError(
            f"Airflow connection '{conn_id}' is of type {conn_type!r}, not 'aws': point "
            f"{AWS_CONN_ID_SETTING} at an Amazon Web Services connection"
        )
    extra = _extra(connection)
    env: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": getattr(connection, "login", None) or None,
        "AWS_SECRET_ACCESS_KEY": getattr(connection, "password", None) or None,
        "AWS_SESSION_TOKEN": extra.get("aws_session_token") or None,
        CREDENTIALS_SOURCE_VARIABLE: f"Airflow connection '{conn_id}' ({AWS_CONN_ID_SETTING})",
    }
    if extra.get("region_name"):
        env["AWS_DEFAULT_REGION"] = str(extra["region_name"])
    # The Amazon provider also accepts a per-service endpoint under service_config.
    endpoint = extra.get("endpoint_url") or (
        (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url")
    )
    if endpoint:
        env.update(dict.fromkeys(ENDPOINT_VARIABLES, str(endpoint)))
    return env


def forget_cached_s3_clients() -> None:
    """Drop S3 clients that remember old credentials: boto3's default session keeps the keys it
    resolved first, and MLflow caches its S3 client, so both would ignore a changed
    environment in a long-lived process (``dag.test()``, a local executor)."""
    if "boto3" in sys.modules:  # not imported yet: nothing cached, and no import cost
        import boto3

        boto3.DEFAULT_SESSION = None
    s3_repo = sys.modules.get("mlflow.store.artifact.s3_artifact_repo")
    cached = getattr(s3_repo, "_cached_get_s3_client", None)
    if cached is not None and hasattr(cached, "cache_clear"):
        cached.cache_clear()


@contextmanager
def applied_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (a string) or unset (None) environment variables for the block, then restore
    exactly what was there before (values and absences)."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forget_cached_s3_clients()
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forget_cached_s3_clients()


def get_airflow_connection(conn_id: str) -> Any:
    """The Airflow connection ``conn_id`` (Airflow's secrets backends, ``AIRFLOW_CONN_<ID>``
    variables included); StackError naming SHOPFLOW_AWS_CONN_ID when it does not exist."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException as exc:
        raise StackError(
            f"Airflow connection '{conn_id}' (from {AWS_CONN_ID_SETTING}) does not exist: "
            f"create it (Admin > Connections, type Amazon Web Services, or an "
            f"AIRFLOW_CONN_{conn_id.upper()} variable) or fix {AWS_CONN_ID_SETTING}"
        ) from exc


@contextmanager
def airflow_aws_credentials(conn_id: str | None = None) -> Iterator[dict[str, str | None]]:
    """Apply the Airflow ``aws`` connection ``conn_id`` (default: ``$SHOPFLOW_AWS_CONN_ID``) to
    the environment for the block; without one, the environment stays as it is. Yields the
    variables applied (secrets included: do not log them)."""
    conn_id = conn_id or os.environ.get(AWS_CONN_ID_SETTING) or None
    if conn_id is None:
        yield {}
        return
    env = aws_connection_env(get_airflow_connection(conn_id))
    with applied_env(env):
        yield env
