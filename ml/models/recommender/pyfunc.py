"""The registered recommender: an MLflow pyfunc honouring ml/core/schemas.py RECOMMENDER_PYFUNC_*.

Input: a DataFrame with column ``history`` (list of item_id strings, oldest first); params
``{"k": int}``. Output: a DataFrame with ``items`` (list of item_id, best first) and ``scores``.
Unknown item ids in a history are ignored; an empty history gets the model's "no history"
recommendations; items already in the history are never recommended. ``score_items(histories,
items)`` on the unwrapped model gives dense scores over any catalogue (full-catalogue ranking
for evaluation and the gate).

New items (not in the catalog the model was trained on) can be made rankable without
retraining::

    pm = mlflow.pyfunc.load_model(uri)
    pm.unwrap_python_model().add_items(["NEW-1"], ["Title. Category. Brand. Description"])

Their text is encoded with the same text model (the shipped MiniLM unless the training run
used another local folder, which must then exist where the model is served); their learned
id embedding is zero, as for any item unseen in training.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from ml.core.schemas import RECOMMENDER_PYFUNC_INPUT, RECOMMENDER_PYFUNC_OUTPUT

if TYPE_CHECKING:
    from ml.models.recommender.model import Recommender

REGISTRATION_FILE = "registration.json"
DEFAULT_K = 10


def score_frame(model: Recommender, histories: Sequence[Sequence[str]], k: int) -> pd.DataFrame:
    """Top-k item_ids and scores for each history of item_id strings (the pyfunc's output)."""
    idx_histories = [model.to_indices(list(h) if h is not None else []) for h in histories]
    top, scores = model.top_k(idx_histories, k)
    ids = np.asarray(model.item_ids, dtype=object)
    return pd.DataFrame(
        {
            RECOMMENDER_PYFUNC_OUTPUT[0]: [list(ids[row]) for row in top],
            RECOMMENDER_PYFUNC_OUTPUT[1]: [row.astype(float).tolist() for row in scores],
        }
    )


def _histories_from_input(model_input: Any) -> list[list[str]]:
    column = RECOMMENDER_PYFUNC_INPUT[0]
    if isinstance(model_input, pd.DataFrame):
        if column not in model_input.columns:
            raise ValueError(f"input DataFrame needs a {column!r} column (list of item_id strings)")
        values = model_input[column].tolist()
    elif isinstance(model_input, dict):
        values = list(model_input[column])
    else:
        raise ValueError(f"expected a DataFrame with column {column!r}")
    return [[str(i) for i in (v if v is not None else [])] for v in values]


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    """Loads the model folder shipped as the ``model_dir`` artifact."""

    def load_context(self, context: Any) -> None:
        from ml.models.recommender.model import Recommender

        self.model = Recommender.load(context.artifacts["model_dir"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        k = int((params or {}).get("k", DEFAULT_K))
        return score_frame(self.model, _histories_from_input(model_input), k)

    def score_items(self, histories: Sequence[Sequence[str]], items: pd.DataFrame) -> np.ndarray:
        """Dense scores of every row of ``items`` (item_id + text columns) for each history:
        what the gate and evaluation rank the whole catalogue with (ml/core/schemas.py)."""
        from ml.models.recommender.scoring import CatalogScorer

        scorer = getattr(self, "_catalog_scorer", None)
        if scorer is None or scorer.model is not self.model:
            scorer = self._catalog_scorer = CatalogScorer(self.model)
        return scorer.score_items(histories, items)

    def add_items(self, item_ids: Sequence[str], texts: Sequence[str]) -> None:
        """Make new items rankable from their texts (see the module docstring)."""
        from ml.models.encoders import encode_texts

        vectors = encode_texts(
            list(texts), self.model.config.get("text_model_path"), show_progress=False
        )
        self.model.add_items(list(item_ids), vectors)


def log_and_register(model_dir: str | Path, model_name: str, example_ids: list[str]) -> dict:
    """Log the model folder as a pyfunc in the active run and register a new version."""
    import mlflow
    from mlflow.models import infer_signature

    from ml.models.recommender.model import INFERENCE_FILES, Recommender

    model = Recommender.load(model_dir)
    example = pd.DataFrame({RECOMMENDER_PYFUNC_INPUT[0]: [example_ids]})
    output = score_frame(model, [example_ids], DEFAULT_K)
    signature = infer_signature(example, output, params={"k": DEFAULT_K})
    with tempfile.TemporaryDirectory() as tmp:
        # Ship only the inference files (not checkpoints or the text cache).
        bundle = Path(tmp) / "recommender"
        bundle.mkdir()
        for name in INFERENCE_FILES:
            if (Path(model_dir) / name).exists():  # the transitions file is optional
                shutil.copy2(Path(model_dir) / name, bundle / name)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            code_paths=[str(Path(__file__).resolve().parents[2])],  # the `ml` package
            artifacts={"model_dir": str(bundle)},
            signature=signature,
            input_example=example,
            registered_model_name=model_name,
        )
    run = mlflow.active_run()
    return {
        "run_id": run.info.run_id if run else None,
        "model_uri": f"models:/{model_name}/{info.registered_model_version}",
        "logged_model_uri": info.model_uri,
        "version": str(info.registered_model_version),
        "model_name": model_name,
    }


def write_registration(info: dict, models_dir: str | Path) -> Path:
    path = Path(models_dir) / REGISTRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return path
