"""Prediction entry points: one text, batch files, bad inputs, the CLI."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml import cli
from ml.core.errors import InputError
from ml.models.intent.predict import predict_file, predict_text


@pytest.fixture(scope="module")
def model_dir(trained: dict[str, Any]) -> str:
    return str(trained["out"] / "model")


def test_predict_text_returns_a_known_label(model_dir: str, trained: dict[str, Any]) -> None:
    out = predict_text(model_dir, "where is my parcel")
    assert out["raw_label"] in trained["summary"]["labels"]
    assert 0 < out["confidence"] <= 1


@pytest.mark.parametrize("bad", ["", "   ", None, 42, "y" * 20001])
def test_predict_text_rejects_bad_input(model_dir: str, bad: Any) -> None:
    with pytest.raises(InputError):
        predict_text(model_dir, bad)


def test_predict_file_gives_defined_results_for_bad_rows(model_dir: str, tmp_path: Any) -> None:
    src = tmp_path / "in.csv"
    texts = ["cancel my order", "", None, "z " * 30000, "refund the shoes please"]
    pd.DataFrame({"utterance": texts, "id": range(5)}).to_csv(src, index=False)
    result = predict_file(model_dir, src, tmp_path / "out.parquet", text_column="utterance")
    assert result["rows"] == 5
    assert result["invalid_text_rows"] == 2
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["id"].tolist() == list(range(5))
    assert out.loc[[1, 2], "label"].tolist() == ["out_of_scope", "out_of_scope"]
    assert np.all(out.loc[[1, 2], "confidence"] == 0.0)
    assert out.loc[3, "confidence"] > 0  # huge text is cut, still scored
    with pytest.raises(InputError, match="no column 'text'"):
        predict_file(model_dir, src, tmp_path / "o.parquet")
    with pytest.raises(InputError, match="does not exist"):
        predict_file(model_dir, tmp_path / "missing.csv", tmp_path / "o.parquet")
    with pytest.raises(InputError, match="neither"):
        predict_file(str(tmp_path), src, tmp_path / "o.parquet", text_column="utterance")


def test_cli_predict_single_and_registry_uri(
    trained: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["ml.models.intent.cli"])
    params = trained["params"]
    sets = ["--set", f"mlflow.tracking_uri={params.mlflow.tracking_uri}"]
    model = json.loads((trained["out"] / "registration.json").read_text())["model_uri"]
    rc = cli.main(
        [
            "predict",
            "intent",
            "--params",
            str(tmp_path / "none.yaml"),
            *sets,
            "--model",
            model,
            "where is my parcel",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["label"] in [*trained["summary"]["labels"], "out_of_scope"]
    rc = cli.main(
        ["predict", "intent", "--params", str(tmp_path / "none.yaml"), *sets, "--model", model, ""]
    )
    assert rc == 4  # InputError exit code, no traceback
