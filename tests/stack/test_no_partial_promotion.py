"""Wrong or missing S3 keys never leave a partial promotion: a real MLflow server (PostgreSQL
backend store) whose artifact root is a bucket on an S3 endpoint that checks keys; promotion,
rollback and the gate fail with the setting to fix and the registry exactly as before."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.core.config import Params
from ml.core.errors import StackError
from ml.release import registry
from ml.release.gate.run import run_gate
from ml.stack import model_store
from ml.stack.credentials import applied_env
from ml.stack.preflight import run_checks
from tests.stack.conftest import (
    TOY_MODELS,
    UNKNOWN_KEY,
    WRONG_SECRET,
    isolated_aws_env,
    run_ml,
    valid_keys,
)
from tests.support.services import (
    S3AuthEndpoint,
    fresh_postgres_database,
    mlflow_server_process,
)

pytestmark = pytest.mark.services

KEYWORDS = {"keywords": {"order": "track_order", "refund": "get_refund"}}
EXPERIMENT = "intent-classifier"  # params.yaml's default intent experiment


@dataclass(frozen=True)
class Registered:
    """A registered model with champion v2, previous-champion v1, and v3 not promoted yet."""

    tracking_uri: str
    name: str
    versions: tuple[str, str, str]
    run_id: str  # v3's run


@pytest.fixture(scope="module")
def module_env(
    s3_auth_endpoint: S3AuthEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Valid keys and an isolated AWS configuration for the whole module."""
    with applied_env(
        {
            **isolated_aws_env(tmp_path_factory.mktemp("aws")),
            **valid_keys(s3_auth_endpoint),
        }
    ):
        yield


@pytest.fixture(scope="module")
def registered(
    module_env: None, s3_auth_endpoint: S3AuthEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registered]:
    import mlflow

    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    with (
        fresh_postgres_database("shopflow_stack") as database,
        mlflow_server_process(
            database, "s3://shopflow-mlflow/artifacts", dict(os.environ), log
        ) as url,
    ):
        mlflow.set_tracking_uri(url)
        mlflow.set_registry_uri(url)
        experiment_id = mlflow.create_experiment(EXPERIMENT)
        name = f"intent-classifier-{uuid.uuid4().hex[:8]}"
        versions, run_id = [], ""
        for _ in range(3):
            with mlflow.start_run(experiment_id=experiment_id) as run:
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(TOY_MODELS / "keyword_intent.py"),
                    model_config=KEYWORDS,
                    registered_model_name=name,
                    input_example=pd.DataFrame({"text": ["where is my order"]}),
                )
            versions.append(str(info.registered_model_version))
            run_id = run.info.run_id
        client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
        registry.promote(client, name, versions[0], "intent", reason="first")
        registry.promote(client, name, versions[1], "intent", reason="second")
        yield Registered(url, name, (versions[0], versions[1], versions[2]), run_id)


@pytest.fixture
def client(registered: Registered) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=registered.tracking_uri, registry_uri=registered.tracking_uri)


def snapshot(client: Any, registered: Registered) -> dict[str, Any]:
    """Everything a promotion or rollback writes."""
    model = client.get_registered_model(registered.name)
    return {
        "aliases": dict(model.aliases),
        "tags": dict(model.tags),
        "version_tags": {
            v: dict(client.get_model_version(registered.name, v).tags) for v in registered.versions
        },
    }


BROKEN_KEYS: dict[str, tuple[dict[str, str | None], str]] = {
    "wrong secret": ({"AWS_SECRET_ACCESS_KEY": WRONG_SECRET}, "AWS_SECRET_ACCESS_KEY is wrong"),
    "unknown key": ({"AWS_ACCESS_KEY_ID": UNKNOWN_KEY}, "fix AWS_ACCESS_KEY_ID"),
    "no keys": (
        {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_KEYS))
def test_promotion_with_broken_keys_changes_nothing(
    case: str, registered: Registered, client: Any
) -> None:
    keys, advice = BROKEN_KEYS[case]
    v1, v2, v3 = registered.versions
    before = snapshot(client, registered)
    assert before["aliases"] == {model_store.CHAMPION: v2, model_store.PREVIOUS: v1}
    with applied_env(keys), pytest.raises(StackError) as raised:
        registry.promote(client, registered.name, v3, "intent", reason="should not happen")
    message = str(raised.value)
    assert advice in message, message
    assert f"models:/{registered.name}/{v3}" in message
    assert "champion and previous-champion unchanged" in message
    assert raised.value.exit_code == 7
    assert snapshot(client, registered) == before
    assert [e["to_version"] for e in registry.history(client, registered.name)] == [v1, v2]


def test_rollback_with_a_wrong_secret_changes_nothing(registered: Registered, client: Any) -> None:
    before = snapshot(client, registered)
    with applied_env({"AWS_SECRET_ACCESS_KEY": WRONG_SECRET}), pytest.raises(StackError):
        registry.rollback(client, registered.name, "intent")
    assert snapshot(client, registered) == before


def test_cli_promotion_exits_7_naming_the_setting(
    registered: Registered, client: Any, tmp_path: Path
) -> None:
    before = snapshot(client, registered)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registered.tracking_uri,
        "AWS_SECRET_ACCESS_KEY": WRONG_SECRET,
    }
    done = run_ml(
        tmp_path,
        env,
        "registry",
        "promote",
        "intent",
        "--version",
        registered.versions[2],
        "--force",
        "--set",
        f"mlflow.intent_model_name={registered.name}",
    )
    assert done.returncode == 7, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "AWS_SECRET_ACCESS_KEY" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(client, registered) == before


def test_gate_fails_with_the_setting_and_tags_nothing(
    registered: Registered, client: Any, tmp_path: Path
) -> None:
    """The gate scores both models from the registry: with a wrong secret it stops at the first
    load, before any report is logged or the challenger is tagged."""
    v3 = registered.versions[2]
    test = pd.DataFrame(
        {
            "example_id": [f"u{i}" for i in range(40)],
            "text": [f"where is my order {i}" if i % 2 else f"refund item {i}" for i in range(40)],
            "label": ["track_order" if i % 2 else "get_refund" for i in range(40)],
        }
    )
    (tmp_path / "processed" / "intent").mkdir(parents=True)
    test.to_parquet(tmp_path / "processed" / "intent" / "test.parquet")
    (tmp_path / "processed" / "intent" / "label_map.json").write_text(
        json.dumps({"labels": ["get_refund", "track_order"]})
    )
    (tmp_path / "models" / "intent").mkdir(parents=True)
    (tmp_path / "models" / "intent" / "registration.json").write_text(
        json.dumps({"run_id": registered.run_id, "version": v3, "model_name": registered.name})
    )
    params = Params.model_validate(
        {
            "paths": {
                "processed": str(tmp_path / "processed"),
                "models": str(tmp_path / "models"),
                "reports": str(tmp_path / "reports"),
            },
            "mlflow": {"tracking_uri": registered.tracking_uri},
            "gate": {"intent": {"primary": {"metric": "accuracy", "min_value": 0.1}}},
        }
    )
    before = snapshot(client, registered)
    with applied_env({"AWS_SECRET_ACCESS_KEY": WRONG_SECRET}), pytest.raises(StackError) as raised:
        run_gate("intent", params, client)
    message = str(raised.value)
    assert f"models:/{registered.name}/{v3}" in message
    assert "AWS_SECRET_ACCESS_KEY is wrong" in message
    assert snapshot(client, registered) == before
    assert "gate.decision" not in before["version_tags"][v3]


def test_preflight_finds_the_experiment_location_on_the_server(
    registered: Registered, s3_auth_endpoint: S3AuthEndpoint
) -> None:
    params = Params.model_validate({"mlflow": {"tracking_uri": registered.tracking_uri}})
    results = run_checks(params, ["mlflow", "artifacts"])
    assert [(r.check, r.status) for r in results] == [("mlflow", "ok"), ("artifacts", "ok")]
    assert results[1].target.startswith("s3://shopflow-mlflow/artifacts/")
    with applied_env({"AWS_SECRET_ACCESS_KEY": WRONG_SECRET}):
        mlflow_check, artifacts_check = run_checks(params, ["mlflow", "artifacts"])
    assert mlflow_check.status == "ok"  # the server itself needs no S3 keys
    assert artifacts_check.failed and "AWS_SECRET_ACCESS_KEY" in artifacts_check.message
    assert s3_auth_endpoint.url in artifacts_check.message
