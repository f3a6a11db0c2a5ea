"""train_intent -> MLflow run + registered pyfunc; evaluate_intent -> metrics and predictions."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from ml.core.schemas import INTENT_PYFUNC_OUTPUT
from ml.models.intent.data import load_labels, load_split
from ml.models.intent.evaluate import PREDICTION_COLUMNS, evaluate_intent
from ml.models.intent.model import IntentModel
from ml.models.intent.scoring import score_intent_model


def test_registered_model_predicts_like_the_in_memory_one(trained: dict[str, Any]) -> None:
    params, out = trained["params"], trained["out"]
    reg = json.loads((out / "registration.json").read_text())
    assert set(reg) == {"run_id", "model_uri", "version", "model_name"}
    assert reg["model_name"] == "intent-classifier"
    assert reg["model_uri"] == f"models:/intent-classifier/{reg['version']}"
    assert not (out / "checkpoints").exists()  # removed once the run is recorded

    mlflow.set_tracking_uri(params.mlflow.tracking_uri)
    mlflow.set_registry_uri(params.mlflow.tracking_uri)
    client = MlflowClient()
    version = client.get_model_version("intent-classifier", reg["version"])
    assert version.run_id == reg["run_id"]
    assert not version.aliases  # promotion is another step's job
    run = client.get_run(reg["run_id"])
    assert "git_commit" in run.data.tags and "data.train.md5" in run.data.tags
    assert run.data.tags["device"] == "cpu"
    assert len(client.get_metric_history(reg["run_id"], "val_macro_f1")) == 3  # epochs 0..2
    artifacts = {a.path for a in client.list_artifacts(reg["run_id"], "diagnostics/val")}
    assert {"diagnostics/val/confusion_matrix.png", "diagnostics/val/reliability.png"} <= artifacts

    labels = load_labels(params.paths.processed)
    test = load_split(params.paths.processed, "test", labels)
    texts = [*test["text"].tolist(), "", None, "x" * 50000]
    loaded = mlflow.pyfunc.load_model(reg["model_uri"])
    from_registry = loaded.predict(pd.DataFrame({"text": texts}))
    in_memory = IntentModel.load(out / "model").predict(texts)
    assert list(from_registry.columns) == list(INTENT_PYFUNC_OUTPUT)
    assert from_registry["label"].tolist() == in_memory["label"].tolist()
    pd.testing.assert_series_equal(from_registry["confidence"], in_memory["confidence"])
    assert from_registry["label"].iloc[-3:-1].tolist() == ["out_of_scope", "out_of_scope"]
    assert loaded.metadata.signature is not None

    frame = score_intent_model(reg["model_uri"], test)
    assert frame["predicted"].tolist() == in_memory["label"].iloc[: len(test)].tolist()


def test_evaluate_writes_metrics_predictions_and_tags(trained: dict[str, Any]) -> None:
    params, out = trained["params"], trained["out"]
    reports = trained["tmp"] / "reports" / "intent"
    result = evaluate_intent(params, params.paths.processed, out, reports)
    metrics = json.loads((reports / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "ece", "oos", "baselines", "margin"):
        assert key in metrics
    assert set(metrics["baselines"]) == {"majority_class", "frozen_encoder_logreg"}
    assert metrics["oos"]["oos_recall"] is not None  # the tiny data has out_of_scope rows
    # The trade-off's chosen point is the threshold in use, and agrees with the oos section.
    tradeoff = metrics["oos_tradeoff"]
    chosen = tradeoff["chosen"]
    assert tradeoff["policy"] == "rejection_precision" and tradeoff["n_oos"] > 0
    assert chosen["threshold"] == metrics["oos_threshold"]
    assert chosen["oos_recall"] == metrics["oos"]["oos_recall"]
    assert chosen["interval"]["oos_recall"]["low"] <= chosen["oos_recall"]
    assert chosen["oos_recall"] <= chosen["interval"]["oos_recall"]["high"]
    assert len(tradeoff["curve"]) >= 51 and (reports / "diagnostics" / "oos_tradeoff.png").is_file()
    assert 0 <= metrics["ece"] <= 1
    preds = pd.read_parquet(reports / "predictions.parquet")
    assert tuple(preds.columns[: len(PREDICTION_COLUMNS)]) == PREDICTION_COLUMNS
    reg = json.loads((out / "registration.json").read_text())
    assert metrics["scored_model"] == reg["model_uri"]  # the registered artifact, not the folder
    test = load_split(params.paths.processed, "test", load_labels(params.paths.processed))
    assert preds["example_id"].tolist() == test["example_id"].tolist()
    assert preds["correct"].mean() == metrics["accuracy"]
    assert result["logged_to_run"] is True

    client = MlflowClient(
        tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri
    )
    tags = client.get_model_version("intent-classifier", reg["version"]).tags
    assert float(tags["test_macro_f1"]) == round(metrics["macro_f1"], 4)
    run_metrics = client.get_run(reg["run_id"]).data.metrics
    assert run_metrics["test_macro_f1"] == metrics["macro_f1"]
    assert "test_baselines_frozen_encoder_logreg_macro_f1" in run_metrics
