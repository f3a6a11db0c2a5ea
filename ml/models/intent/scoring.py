"""Scoring an intent model on the frozen test split: the one path for every caller.

``evaluate intent`` (the challenger), the gate (challenger and champion, both loaded from the
registry), the benchmarks and the behavioural checks call :func:`score_intent_model`, so both
sides of a comparison are measured by the same code.

The frame has one row per test text::

    example_id, label, predicted (after the out-of-scope threshold), raw_predicted (argmax),
    confidence (top-class probability), correct (predicted == label),
    raw_correct (raw_predicted == label: what calibration is measured against),
    first_seen (date of the partition a text first arrived in, when preprocessing kept it)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core.errors import InputError

if TYPE_CHECKING:
    from ml.core.config import Params

SCORE_COLUMNS = (
    "example_id",
    "label",
    "predicted",
    "raw_predicted",
    "confidence",
    "correct",
    "raw_correct",
)


def load_intent_model(model: Any) -> Any:
    """A local bundle folder, an ONNX export folder, an MLflow pyfunc folder, a models:/ or
    runs:/ URI, or an already loaded model (IntentModel, OnnxIntentModel or PyFuncModel) ->
    something with .predict."""
    if not isinstance(model, str | Path):
        return model
    from ml.models.intent.model import IntentModel, is_bundle
    from ml.models.intent.onnx_model import is_onnx_export, load_onnx_intent_model

    # First: an export carries the bundle's meta file too (but no torch weights).
    if Path(model).is_dir() and is_onnx_export(model):
        return load_onnx_intent_model(model)
    if Path(model).is_dir() and is_bundle(model):
        return IntentModel.load(model)
    if Path(model).is_dir() and not (Path(model) / "MLmodel").is_file():
        raise InputError(f"{model} is neither an intent model folder nor an MLflow model folder")
    from ml.stack.model_store import load_model

    try:
        return load_model(str(model))
    except InputError:
        raise
    except Exception as exc:  # MLflow raises several types for a bad URI
        if type(exc).__name__ == "StackError":
            raise
        raise InputError(f"cannot load intent model {model}: {exc}") from exc


def predict_texts(model: Any, texts: list[Any]) -> pd.DataFrame:
    """Contract output (label, confidence, raw_label) for any supported model object."""
    from ml.models.intent.model import IntentModel
    from ml.models.intent.onnx_model import OnnxIntentModel

    if isinstance(model, IntentModel | OnnxIntentModel):
        return model.predict(texts)
    return pd.DataFrame(model.predict(pd.DataFrame({"text": texts}))).reset_index(drop=True)


def score_intent_model(model: Any, test: pd.DataFrame, text_column: str = "text") -> pd.DataFrame:
    """Score ``test`` (example_id?, text, label?) with ``model`` (see :func:`load_intent_model`).

    ``label``, ``correct`` and ``raw_correct`` only when ``test`` has labels; ``example_id``
    defaults to the row position.
    """
    if text_column not in test.columns:
        raise InputError(
            f"input frame has no column {text_column!r} (columns: {list(test.columns)})"
        )
    scores = predict_texts(load_intent_model(model), test[text_column].tolist())
    ids = test["example_id"].to_numpy() if "example_id" in test else np.arange(len(test))
    out = pd.DataFrame({"example_id": ids})
    labelled = "label" in test
    if labelled:
        out["label"] = test["label"].astype(str).to_numpy()
    out["predicted"] = scores["label"].astype(str).to_numpy()
    out["raw_predicted"] = scores["raw_label"].astype(str).to_numpy()
    out["confidence"] = scores["confidence"].astype(float).to_numpy()
    if labelled:
        out["correct"] = out["label"] == out["predicted"]
        out["raw_correct"] = out["label"] == out["raw_predicted"]
    if "first_seen" in test:
        out["first_seen"] = test["first_seen"].astype(str).to_numpy()
    # One row order for every caller (metrics are sums: same order, same bits).
    return out.sort_values("example_id", kind="stable").reset_index(drop=True)


def load_frozen_test(params: Params) -> pd.DataFrame:
    """The frozen test split under ``paths.processed``."""
    from ml.models.intent.data import load_labels, load_split

    processed = params.paths.processed
    return load_split(processed, "test", load_labels(processed))


def score_frozen_test(model: Any, test: pd.DataFrame, params: Params) -> pd.DataFrame:
    return score_intent_model(model, test)


def frame_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """The headline numbers of a scored frame, as metrics.json and the gate report them."""
    from ml.core import metrics as m

    (label, predicted, raw), classes = m.encode_labels(
        frame["label"], frame["predicted"], frame["raw_predicted"]
    )
    n_classes = max(len(classes), 1)
    return {
        "accuracy": m.accuracy(frame["correct"].to_numpy()),
        "macro_f1": m.macro_f1(label, predicted, n_classes),
        "raw_accuracy": m.accuracy(frame["raw_correct"].to_numpy()),
        "raw_macro_f1": m.macro_f1(label, raw, n_classes),
        "ece": m.expected_calibration_error(
            frame["confidence"].to_numpy(), frame["raw_correct"].to_numpy()
        ),
        "mean_confidence": m.weighted_mean(frame["confidence"].to_numpy()),
    }
