"""A keyword-lookup intent model honouring the intent pyfunc contract (logged as code).

model_config: {"keywords": {word: label}, "confidence": float, "fallback": label}.
"""

from __future__ import annotations

import re
from typing import Any

import mlflow
import pandas as pd


class KeywordIntent(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        config = context.model_config or {}
        self.keywords = dict(config.get("keywords", {}))
        self.confidence = float(config.get("confidence", 0.9))
        self.fallback = str(config.get("fallback", "out_of_scope"))

    def predict(self, context, model_input, params=None):  # no hints: MLflow would infer a schema
        labels = []
        for text in model_input["text"].astype(str):
            words = re.findall(r"[a-z]+", text.lower())
            labels.append(next((self.keywords[w] for w in words if w in self.keywords), None))
        found = [label is not None for label in labels]
        return pd.DataFrame(
            {
                "label": [label or self.fallback for label in labels],
                "confidence": [self.confidence if f else 0.3 for f in found],
                "raw_label": [label or self.fallback for label in labels],
            }
        )


mlflow.models.set_model(KeywordIntent())
