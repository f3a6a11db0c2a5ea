"""A popularity recommender honouring the recommender pyfunc contract (logged as code).

model_config: {"ranking": [item_id, ...]} most popular first; items in the history are skipped.
``score_items`` (the full-catalogue part of the contract) scores items by that order; items not
in the ranking score lowest, all alike.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd


class Popularity(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        self.ranking = [str(i) for i in (context.model_config or {}).get("ranking", [])]

    def predict(self, context, model_input, params=None):  # no hints: MLflow would infer a schema
        k = int((params or {}).get("k", 10))
        items, scores = [], []
        for history in model_input["history"]:
            seen = {str(i) for i in history}
            top = [i for i in self.ranking if i not in seen][:k]
            items.append(top)
            scores.append([1.0 / (r + 1) for r in range(len(top))])
        return pd.DataFrame({"items": items, "scores": scores})

    def score_items(self, histories, items):  # no hints, as above
        position = {item: r for r, item in enumerate(self.ranking)}
        row = np.array([-float(position.get(str(i), len(self.ranking))) for i in items["item_id"]])
        return np.tile(row, (len(histories), 1))


mlflow.models.set_model(Popularity())
