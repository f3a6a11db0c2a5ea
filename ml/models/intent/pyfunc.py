"""The intent classifier as an MLflow pyfunc obeying ml.core.schemas' contract.

Input: a DataFrame with column "text". Output: a DataFrame with columns "label" (out_of_scope
below the threshold), "confidence" and "raw_label" (the argmax). The model bundle (tokenizer,
safetensors weights, threshold, label map) travels as the artifact "bundle"; the ``ml`` package
travels as code, so any MLflow client with the pinned libraries can load it.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from ml.core.errors import InputError
from ml.core.schemas import INTENT_PYFUNC_INPUT, INTENT_PYFUNC_OUTPUT

ARTIFACT_KEY = "bundle"


class IntentPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    def load_context(self, context: Any) -> None:
        from ml.models.intent.model import IntentModel

        self.model = IntentModel.load(context.artifacts[ARTIFACT_KEY])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if isinstance(model_input, pd.Series):
            model_input = model_input.to_frame(INTENT_PYFUNC_INPUT[0])
        if not isinstance(model_input, pd.DataFrame) or INTENT_PYFUNC_INPUT[0] not in model_input:
            raise InputError(
                f"intent model input needs a DataFrame with column {INTENT_PYFUNC_INPUT[0]!r}"
            )
        texts = model_input[INTENT_PYFUNC_INPUT[0]].tolist()
        return self.model.predict(texts)[list(INTENT_PYFUNC_OUTPUT)]


def _requirements() -> list[str]:
    reqs = []
    for dist in (
        "torch",
        "transformers",
        "safetensors",
        "mlflow",
        "pandas",
        "numpy",
        "scikit-learn",
        "pydantic",
        "pyyaml",
        "tqdm",
    ):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def log_intent_pyfunc(
    bundle_dir: Path, registered_model_name: str | None, example_texts: list[str]
) -> Any:
    """Log (and register, when a name is given) the bundle as a pyfunc in the active run.

    Returns MLflow's ModelInfo (``registered_model_version`` is set when registered).
    """
    from mlflow.models import infer_signature

    from ml.models.intent.model import IntentModel

    example = pd.DataFrame({INTENT_PYFUNC_INPUT[0]: example_texts[:3] or ["where is my parcel"]})
    output = IntentModel.load(bundle_dir).predict(example[INTENT_PYFUNC_INPUT[0]].tolist())
    meta = json.loads((bundle_dir / "intent_meta.json").read_text(encoding="utf-8"))
    package_dir = Path(__file__).resolve().parents[2]  # the `ml` package
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={ARTIFACT_KEY: str(bundle_dir)},
        code_paths=[str(package_dir)],
        signature=infer_signature(example, output),
        input_example=example,
        pip_requirements=_requirements(),
        registered_model_name=registered_model_name,
        metadata={"threshold": meta["threshold"], "n_labels": len(meta["labels"])},
    )
