"""A model whose artifact cannot load (its load_context fails), for the never-promote test."""

from __future__ import annotations

from typing import Any

import mlflow


class Broken(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        raise RuntimeError("weights file is corrupt")

    def predict(self, context, model_input, params=None):  # no hints: MLflow would infer a schema
        raise RuntimeError("unreachable")


mlflow.models.set_model(Broken())
