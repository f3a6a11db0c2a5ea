"""Gate/registry fixtures: a sqlite MLflow store in tmp_path, or (services) a real mlflow server
with a PostgreSQL backend store and artifacts on a moto S3 endpoint; toy contract models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import fresh_postgres_database, mlflow_server_process

TOY_MODELS = Path(__file__).parent / "toy_models"
INTENT_EXAMPLE = {"text": ["where is my order"]}


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[str]:
    """A fresh database on the local PostgreSQL (user postgres, trust auth), dropped afterwards."""
    with fresh_postgres_database("shopflow_gate") as url:
        yield url


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_db: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real ``mlflow server``: Postgres backend store, artifacts written by clients to S3."""
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    saved = {k: os.environ.get(k) for k in env if k.startswith(("AWS_", "MLFLOW_S3"))}
    with mlflow_server_process(postgres_db, "s3://shopflow-mlflow/artifacts", env, log) as url:
        # This process is a client too: it writes the artifacts to the bucket itself.
        os.environ.update({k: env[k] for k in saved})
        try:
            yield url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(params=["sqlite", pytest.param("server", marks=pytest.mark.services)])
def tracking_uri(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Both backends: the embedded default (sqlite in tmp_path) and a real server."""
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        uri = request.getfixturevalue("mlflow_server")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


@pytest.fixture
def log_toy(tracking_uri: str, tmp_path: Path) -> Callable[..., tuple[str, str]]:
    """Log and register a toy model from code; returns (version, run_id)."""
    import mlflow

    experiment = f"gate-test-{uuid.uuid4().hex[:8]}"
    location = None if tracking_uri.startswith("http") else (tmp_path / "artifacts").as_uri()
    experiment_id = mlflow.create_experiment(experiment, artifact_location=location)

    def log(kind: str, name: str, config: dict[str, Any] | None = None) -> tuple[str, str]:
        example: Any = None
        if kind == "keyword_intent":
            import pandas as pd

            example = pd.DataFrame(INTENT_EXAMPLE)
        with mlflow.start_run(experiment_id=experiment_id) as run:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(TOY_MODELS / f"{kind}.py"),
                model_config=config,
                registered_model_name=name,
                input_example=example,
            )
        return str(info.registered_model_version), run.info.run_id

    return log


@pytest.fixture
def client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture
def model_name() -> str:
    """A registered-model name of its own: the server store outlives single tests."""
    return f"intent-classifier-{uuid.uuid4().hex[:8]}"
