"""Stack tests: an S3 endpoint that checks keys (moto in IAM auth mode), the process's AWS
settings pointed at it, and an isolated AWS configuration (no ~/.aws, no instance metadata)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ml.stack.credentials import forget_cached_s3_clients
from tests.support.services import S3AuthEndpoint

# Airflow reads its configuration once, on first import: a throw-away home unless the Airflow
# tests' conftest already set one.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="shopflow-stack-airflow-"))

REPO_ROOT = Path(__file__).resolve().parents[2]
TOY_MODELS = REPO_ROOT / "tests" / "gate" / "toy_models"
WRONG_SECRET = "not-the-secret-of-this-key"
UNKNOWN_KEY = "AKIAUNKNOWNKEY000000"

# Settings that would let the host's own configuration leak into a test.
_HOST_SETTINGS = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "SHOPFLOW_AWS_CONN_ID",
)


def isolated_aws_env(tmp: Path) -> dict[str, str | None]:
    """No shared config or credentials files, no instance metadata lookups (slow, and a real
    machine's role would hide a missing key), none of the host's AWS / MLflow settings."""
    return {
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        **dict.fromkeys(_HOST_SETTINGS),
    }


def valid_keys(s3: S3AuthEndpoint) -> dict[str, str | None]:
    return {
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": s3.url,
    }


@pytest.fixture
def aws(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    s3_auth_endpoint: S3AuthEndpoint,
) -> Iterator[Callable[..., None]]:
    """Valid keys for the auth-mode endpoint; call ``aws(NAME=value)`` to change settings for
    the rest of the test (None unsets one)."""

    def apply(**overrides: str | None) -> None:
        for name, value in {**valid_keys(s3_auth_endpoint), **overrides}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        forget_cached_s3_clients()

    apply(**isolated_aws_env(tmp_path))
    yield apply
    forget_cached_s3_clients()


def run_ml(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m ml ...`` in a fresh process (real exit code and stderr)."""
    env = {**env, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "ml", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def init_dvc_project(project: Path, remote_url: str, endpoint: str, **options: str) -> Path:
    """A DVC project whose default remote ``store`` is ``remote_url`` at ``endpoint``, written
    by DVC's own config code into .dvc/config.local as ``dvc remote add --local --default``
    would; ``options`` are more remote settings (e.g. access_key_id)."""
    from dvc.config import Config

    dvc_dir = project / ".dvc"
    dvc_dir.mkdir(parents=True)
    (dvc_dir / "config").write_text("")
    with Config(dvc_dir=str(dvc_dir)).edit("local") as conf:
        conf["core"]["remote"] = "store"
        conf["remote"]["store"] = {"url": remote_url, "endpointurl": endpoint, **options}
    return project
