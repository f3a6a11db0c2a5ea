"""Real local services for tests: free ports, waiting for HTTP, a moto S3 server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ml.orchestration.embedded import MLFLOW_NO_JOB_EXECUTION

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(
    url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float
) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(
        f"{what} not answering at {url} after {timeout}s; log:\n{log.read_text()[-3000:]}"
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def moto_server(tmp_path_factory: pytest.TempPathFactory, what: str) -> Iterator[str]:
    """A moto S3 server on a free loopback port, stopped afterwards; yields its URL."""
    moto = shutil.which("moto_server", path=str(VENV_BIN)) or shutil.which("moto_server")
    if moto is None:
        raise RuntimeError("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=fh, stderr=fh)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, proc, what, log, 60)
        yield url
    finally:
        stop(proc)


def dummy_s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for a moto server at ``endpoint``, with moto's dummy keys."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def use_dummy_s3_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys for the plain moto server (it accepts any), in the environment for one test."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free port with bucket ``shopflow-mlflow``; dummy credentials."""
    with moto_server(tmp_path_factory, "moto_server") as url:
        import boto3

        boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        ).create_bucket(Bucket="shopflow-mlflow")
        yield url


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new database on the local PostgreSQL (user postgres, trust auth), dropped afterwards;
    yields its SQLAlchemy URL."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    except psycopg2.OperationalError as exc:
        raise RuntimeError(f"PostgreSQL at 127.0.0.1:5432 (user postgres) is down: {exc}") from exc
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        # psycopg2 named explicitly: SQLAlchemy 2.1 defaults to psycopg 3, which is not installed.
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@dataclass(frozen=True)
class S3AuthEndpoint:
    """A moto S3 server that checks signatures: only ``access_key_id``/``secret_access_key``
    (an IAM user allowed ``s3:*``) are accepted; the buckets in ``buckets`` exist."""

    url: str
    access_key_id: str
    secret_access_key: str
    buckets: tuple[str, ...]


# Buckets created on the auth-mode endpoint before authentication is switched on.
AUTH_BUCKETS = ("shopflow-mlflow", "shopflow-dvc")


@pytest.fixture(scope="session")
def s3_auth_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3AuthEndpoint]:
    """A second moto server in IAM auth mode: unknown keys get InvalidAccessKeyId, a wrong
    secret SignatureDoesNotMatch. The user, its key and the buckets are created while moto
    still accepts anything; then ``/moto-api/reset-auth 0`` makes every later call authenticate
    (the same switch as moto_server's INITIAL_NO_AUTH_ACTION_COUNT, without counting calls)."""
    import json
    import urllib.request

    import boto3

    with moto_server(tmp_path_factory, "moto_server (auth mode)") as url:
        setup = {
            "endpoint_url": url,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="shopflow")
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="shopflow", PolicyName="s3-all", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="shopflow")["AccessKey"]
        s3 = boto3.client("s3", **setup)
        for bucket in AUTH_BUCKETS:
            s3.create_bucket(Bucket=bucket)
        # text/plain: with urllib's default form content type moto reads an empty body.
        request = urllib.request.Request(
            f"{url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        yield S3AuthEndpoint(url, key["AccessKeyId"], key["SecretAccessKey"], AUTH_BUCKETS)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    pid: int


@contextlib.contextmanager
def mlflow_server(
    backend_store_uri: str, artifact_root: str, env: dict[str, str], log: Path
) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` (one worker, ``--no-serve-artifacts``: clients read and write
    ``artifact_root`` themselves with their own credentials; no server-side job runner: its
    huey consumers serve MLflow's GenAI jobs, which nothing here uses); yields its URL and the
    ``mlflow server`` process id."""
    port = free_port()
    cmd = [
        str(VENV_BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--default-artifact-root",
        artifact_root,
        "--no-serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=fh, env={**env, **MLFLOW_NO_JOB_EXECUTION})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, "mlflow server", log, 180)
        yield MlflowServer(url, proc.pid)
    finally:
        stop(proc)


@contextlib.contextmanager
def mlflow_server_process(
    backend_store_uri: str, artifact_root: str, env: dict[str, str], log: Path
) -> Iterator[str]:
    """:func:`mlflow_server`, yielding its URL."""
    with mlflow_server(backend_store_uri, artifact_root, env, log) as server:
        yield server.url
