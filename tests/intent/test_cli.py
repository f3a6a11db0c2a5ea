"""`python -m ml train intent` / `evaluate intent` wiring, through ml.cli.main."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ml import cli


def test_train_then_evaluate_via_cli(
    tmp_path: Path, make_params: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["ml.models.intent.cli"])
    params = make_params(tmp_path)
    sets: list[str] = []
    for key, value in {
        "paths.processed": params.paths.processed,
        "paths.models": params.paths.models,
        "paths.reports": params.paths.reports,
        "intent.train.model_path": params.intent.train.model_path,
        "intent.train.epochs": 1,
        "intent.train.batch_size": 8,
        "mlflow.tracking_uri": params.mlflow.tracking_uri,
        "mlflow.artifact_location": params.mlflow.artifact_location,
    }.items():
        sets += ["--set", f"{key}={value}"]
    none = ["--params", str(tmp_path / "none.yaml")]
    assert cli.main(["train", "intent", *none, *sets, "--no-register"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["registration"]["version"] is None  # logged, not registered
    assert (params.paths.models / "intent" / "registration.json").is_file()
    assert cli.main(["evaluate", "intent", *none, *sets]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert Path(evaluated["predictions_file"]).is_file()
    assert evaluated["logged_to_run"] is True
