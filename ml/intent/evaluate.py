"""Evaluation on the frozen test split, with baselines in the same run.

Writes ``<reports>/metrics.json`` (DVC metrics) and ``<reports>/predictions.parquet``
(example_id, label, predicted, confidence, correct: what the offline A/B gate pairs), logs
both to the training run and tags the registered version with the key metrics.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.errors import InputError
from ml.intent import baseline as base
from ml.intent.data import load_labels, load_split
from ml.intent.diagnostics import classification_metrics, expected_calibration_error

if TYPE_CHECKING:
    from ml.config import Params

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("example_id", "label", "predicted", "confidence", "correct")


def load_intent_model(model: Any) -> Any:
    """A local bundle folder, an MLflow pyfunc folder, a models:/ or runs:/ URI, or an
    already loaded model (IntentModel or PyFuncModel) -> something with .predict."""
    if not isinstance(model, str | Path):
        return model
    from ml.intent.model import IntentModel, is_bundle

    if Path(model).is_dir() and is_bundle(model):
        return IntentModel.load(model)
    if Path(model).is_dir() and not (Path(model) / "MLmodel").is_file():
        raise InputError(f"{model} is neither an intent model folder nor an MLflow model folder")
    import mlflow.pyfunc

    try:
        return mlflow.pyfunc.load_model(str(model))
    except Exception as exc:  # MLflow raises several types for a bad URI
        raise InputError(f"cannot load intent model {model}: {exc}") from exc


def score_texts(model: Any, texts: list[Any]) -> pd.DataFrame:
    """Contract output (label, confidence, raw_label) for any supported model object."""
    from ml.intent.model import IntentModel

    if isinstance(model, IntentModel):
        return model.predict(texts)
    return pd.DataFrame(model.predict(pd.DataFrame({"text": texts}))).reset_index(drop=True)


def predict_frame(
    model_uri_or_loaded: Any, df: pd.DataFrame, text_column: str = "text"
) -> pd.DataFrame:
    """Score a test frame: example_id, label, predicted, confidence, correct, raw_predicted.

    ``label``/``correct`` only when ``df`` has a label column; ``example_id`` defaults to the
    row position. Used for the challenger here and for the champion by the gate.
    """
    if text_column not in df.columns:
        raise InputError(f"input frame has no column {text_column!r} (columns: {list(df.columns)})")
    model = load_intent_model(model_uri_or_loaded)
    scores = score_texts(model, df[text_column].tolist())
    out = pd.DataFrame(
        {"example_id": df["example_id"].to_numpy() if "example_id" in df else np.arange(len(df))}
    )
    if "label" in df:
        out["label"] = df["label"].astype(str).to_numpy()
    out["predicted"] = scores["label"].astype(str).to_numpy()
    out["confidence"] = scores["confidence"].astype(float).to_numpy()
    if "label" in df:
        out["correct"] = out["label"] == out["predicted"]
    out["raw_predicted"] = scores["raw_label"].astype(str).to_numpy()
    return out


def _frozen_baseline_scores(
    models_dir: Path, base_model: Path, texts: list[str], max_length: int
) -> np.ndarray:
    from ml.intent.model import build_net, embed_texts

    coef, intercept, labels = base.load_linear(models_dir / "baseline_lr.npz")
    net, tokenizer = build_net(base_model, len(labels), 0.0)
    emb = embed_texts(net, tokenizer, texts, max_length=max_length)
    return base.linear_proba(emb, coef, intercept)


def evaluate_intent(
    params: Params,
    processed_dir: str | Path,
    models_dir: str | Path,
    reports_dir: str | Path,
    *,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Evaluate ``<models_dir>/model`` on the test split against the two baselines."""
    from ml.intent.diagnostics import write_diagnostics
    from ml.intent.model import IntentModel
    from ml.intent.oos import oos_metrics

    processed_dir, models_dir, reports_dir = (
        Path(processed_dir),
        Path(models_dir),
        Path(reports_dir),
    )
    labels = load_labels(processed_dir)
    train_df = load_split(processed_dir, "train", labels)
    test_df = load_split(processed_dir, "test", labels)
    model = IntentModel.load(models_dir / "model")
    pred = predict_frame(model, test_df)
    y_true = pred["label"].tolist()
    raw = pred["raw_predicted"].tolist()
    conf = pred["confidence"].to_numpy()
    oos_label = params.intent.oos_label

    final = classification_metrics(y_true, pred["predicted"].tolist())
    raw_m = classification_metrics(y_true, raw)
    majority = base.majority_label(train_df["label"].astype(str).tolist())
    maj_m = classification_metrics(y_true, [majority] * len(y_true))
    frozen_probs = _frozen_baseline_scores(
        models_dir,
        model_base(models_dir, params.intent.train.model_path),
        test_df["text"].tolist(),
        model.max_length,
    )
    frozen_pred = [labels[i] for i in frozen_probs.argmax(axis=1)]
    frozen_m = classification_metrics(y_true, frozen_pred)
    metrics: dict[str, Any] = {
        "n_test": len(test_df),
        "accuracy": final["accuracy"],
        "macro_f1": final["macro_f1"],
        "raw_accuracy": raw_m["accuracy"],
        "raw_macro_f1": raw_m["macro_f1"],
        "ece": expected_calibration_error(conf, np.asarray(y_true) == np.asarray(raw)),
        "oos_threshold": model.threshold,
        "oos": oos_metrics(
            y_true, pred["predicted"].tolist(), raw, conf, model.threshold, oos_label
        ),
        "baselines": {
            "majority_class": {"label": majority, **maj_m},
            "frozen_encoder_logreg": {
                **frozen_m,
                "ece": expected_calibration_error(
                    frozen_probs.max(axis=1), np.asarray(y_true) == np.asarray(frozen_pred)
                ),
            },
        },
        # Margins compare like with like: argmax predictions, no out-of-scope threshold.
        "margin": {
            "macro_f1_over_majority": raw_m["macro_f1"] - maj_m["macro_f1"],
            "accuracy_over_majority": raw_m["accuracy"] - maj_m["accuracy"],
            "macro_f1_over_frozen_logreg": raw_m["macro_f1"] - frozen_m["macro_f1"],
            "accuracy_over_frozen_logreg": raw_m["accuracy"] - frozen_m["accuracy"],
        },
    }
    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    pred[list(PREDICTION_COLUMNS)].to_parquet(reports_dir / "predictions.parquet", index=False)
    diag = write_diagnostics(
        reports_dir / "diagnostics",
        texts=test_df["text"].tolist(),
        y_true=y_true,
        y_pred=raw,
        confidence=conf,
        labels=labels,
        title="test",
        seed=params.seed,
    )
    result = {
        "metrics_file": str(reports_dir / "metrics.json"),
        "predictions_file": str(reports_dir / "predictions.parquet"),
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "raw_macro_f1": metrics["raw_macro_f1"],
        "ece": metrics["ece"],
        "margin": metrics["margin"],
        "diagnostics": {k: str(v) for k, v in diag.items()},
    }
    registration = models_dir / "registration.json"
    if log_to_mlflow and registration.is_file():
        _log_to_training_run(
            params, json.loads(registration.read_text(encoding="utf-8")), metrics, reports_dir
        )
        result["logged_to_run"] = True
    elif log_to_mlflow:
        log.warning("%s missing: evaluation not logged to MLflow", registration)
    return result


def model_base(models_dir: Path, configured: Path | None = None) -> Path:
    """The base encoder the model was trained from (for the frozen baseline); falls back to the
    configured one when the recorded folder is not on this machine (e.g. another container)."""
    from ml.encoders import resolve_model_path

    meta = json.loads((models_dir / "model" / "intent_meta.json").read_text(encoding="utf-8"))
    recorded = Path(meta["base_model"])
    return recorded if recorded.is_dir() else resolve_model_path(configured)


def flat_metrics(metrics: dict[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Nested metrics -> flat numeric MLflow metrics (None values dropped)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{prefix}{key}_"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


def _log_to_training_run(
    params: Params, registration: dict[str, Any], metrics: dict[str, Any], reports_dir: Path
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from ml.tracking import configure_mlflow

    configure_mlflow(params.mlflow, params.mlflow.intent_experiment)
    with mlflow.start_run(run_id=registration["run_id"]):
        mlflow.log_metrics(flat_metrics(metrics))
        mlflow.log_artifact(str(reports_dir / "metrics.json"), "evaluation")
        mlflow.log_artifact(str(reports_dir / "predictions.parquet"), "evaluation")
        mlflow.log_artifacts(str(reports_dir / "diagnostics"), "diagnostics/test")
    if registration.get("version"):
        client = MlflowClient()
        tags = {
            "test_accuracy": metrics["accuracy"],
            "test_macro_f1": metrics["macro_f1"],
            "test_ece": metrics["ece"],
            "macro_f1_over_frozen_logreg": metrics["margin"]["macro_f1_over_frozen_logreg"],
            "oos_threshold": metrics["oos_threshold"],
        }
        for key, value in tags.items():
            client.set_model_version_tag(
                registration["model_name"], registration["version"], key, f"{value:.4f}"
            )
