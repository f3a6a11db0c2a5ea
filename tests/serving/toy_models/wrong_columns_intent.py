"""An intent model that loads and predicts but breaks the output contract (its columns are
``intent``/``score``, not label/confidence/raw_label): serving must never serve it."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd


class WrongColumns(mlflow.pyfunc.PythonModel):
    def predict(self, context: Any, model_input, params=None):  # no hints: MLflow would infer
        n = len(model_input)
        return pd.DataFrame({"intent": ["track_order"] * n, "score": [0.9] * n})


mlflow.models.set_model(WrongColumns())
