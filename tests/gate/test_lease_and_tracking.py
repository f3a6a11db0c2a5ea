"""The registry lease (busy, stale, released) and MLFLOW_TRACKING_URI winning over params."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ml.core.config import MlflowConfig
from ml.release import registry
from ml.stack.tracking import configure_mlflow


def test_busy_lease_times_out_and_stale_lease_is_taken_over(client: Any, model_name: str) -> None:
    client.create_registered_model(model_name)
    busy = {"owner": "other-host:1:abc", "expires": time.time() + 600}
    client.set_registered_model_tag(model_name, registry.LOCK_TAG, json.dumps(busy))
    with (
        pytest.raises(registry.LockTimeout, match="lease busy"),
        registry.RegistryLease(client, model_name, timeout=1.0, settle=0.05),
    ):
        pass
    stale = {"owner": "crashed-host:1:abc", "expires": time.time() - 1}
    client.set_registered_model_tag(model_name, registry.LOCK_TAG, json.dumps(stale))
    with registry.RegistryLease(client, model_name, settle=0.05) as lease:
        assert lease.held()
    assert registry.LOCK_TAG not in client.get_registered_model(model_name).tags


def test_environment_tracking_uri_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from_params = f"sqlite:///{tmp_path / 'params.db'}"
    from_env = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", from_env)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    cfg = MlflowConfig(tracking_uri=from_params, artifact_location=(tmp_path / "a").as_uri())
    configure_mlflow(cfg, "env-wins")
    assert mlflow.get_tracking_uri() == from_env
    assert mlflow.get_registry_uri() == from_env
    assert (tmp_path / "env.db").exists() and not (tmp_path / "params.db").exists()
