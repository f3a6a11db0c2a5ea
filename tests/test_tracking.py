from __future__ import annotations

from pathlib import Path

import pytest

from ml.core.config import MlflowConfig, load_params
from ml.stack.tracking import configure_mlflow, data_fingerprint, lineage_tags, resolve_tracking_uri


def test_two_stores_in_one_process_do_not_leak_into_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    # mlflow.set_*_uri export both URIs: monkeypatch removes them again afterwards.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first = MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'a.db'}")
    second = MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'b.db'}")
    configure_mlflow(first, "exp")
    # mlflow exported the first URI into the environment; it must not win over `second`.
    configure_mlflow(second, "exp")
    assert mlflow.get_tracking_uri() == second.tracking_uri


def test_a_deployment_uri_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    uri, registry = resolve_tracking_uri(MlflowConfig(tracking_uri="sqlite:///x.db"))
    assert uri == registry == "http://tracking.example:5000"


def test_a_deployment_uri_keeps_winning_on_later_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    deployed = f"sqlite:///{tmp_path / 'deployed.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", deployed)
    params_store = MlflowConfig(tracking_uri=f"sqlite:///{tmp_path / 'params.db'}")
    configure_mlflow(params_store, "exp")
    configure_mlflow(params_store, "exp")
    assert mlflow.get_tracking_uri() == deployed
    assert mlflow.get_registry_uri() == deployed


def test_lineage_tags_fingerprint_data_and_params(tmp_path: Path) -> None:
    data = tmp_path / "train.parquet"
    data.write_bytes(b"abc")
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "x").write_text("1")
    tags = lineage_tags(load_params(tmp_path / "none.yaml"), {"train": data, "dir": folder})
    assert tags["data.train.md5"] == "900150983cd24fb0d6963f7d28e17f72"
    assert tags["data.dir.md5"].endswith(".dir")
    assert len(tags["params_hash"]) == 16 and "git_commit" in tags
    assert data_fingerprint(tmp_path / "absent") == "missing"
