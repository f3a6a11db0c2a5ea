"""A registered model version -> a served model: a batch predict function honouring the
family's contract (ml.core.schemas), plus what /v1/models reports about it.

Intent: the version's ONNX export when ``serving.fast_variant`` is ``auto`` and its tags say the
export passed its accuracy check (``shopflow.fast_variant_ok``), else the torch IntentModel inside
the registered pyfunc (any other pyfunc honouring the contract is served through its own
predict). Recommender: the Recommender inside the registered pyfunc, scored with the pyfunc's own
``score_frame`` (so unknown ids are ignored and the history is never recommended, as offline);
any other contract pyfunc through its predict.

Before a version is served, :func:`smoke_check` runs the served object itself (not just the
pyfunc) on the family's contract example (ml.release.registry.contract_example) and the
version's logged input example, and checks every output field.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.core.errors import ShopflowError
from ml.core.schemas import (
    INTENT_PYFUNC_INPUT,
    INTENT_PYFUNC_OUTPUT,
    RECOMMENDER_PYFUNC_INPUT,
    RECOMMENDER_PYFUNC_OUTPUT,
)
from ml.stack.model_store import FAST_VARIANT_OK_TAG, FAST_VARIANT_PATH_TAG, FAST_VARIANT_TAG

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from ml.core.config import Params
    from ml.serving.batching import MicroBatcher

log = logging.getLogger(__name__)

ONNX_MODULE = "ml.models.intent.onnx_model"

# A recommender request as the batcher sees it: (history, k).
RecRequest = tuple[tuple[str, ...], int]


class ContractError(ShopflowError):
    """A model version's output breaks its family's contract: it is never served."""

    exit_code = 5


@dataclass(eq=False)
class ServedModel:
    """One loaded version of a family, as the server uses it."""

    family: str
    name: str
    version: str
    alias: str
    run_id: str | None
    variant: str  # torch | pyfunc | the fast variant's name (e.g. onnx-int8)
    predict: Callable[[list[Any]], list[Any]]
    input_example: pd.DataFrame | None = None
    # Recommender: the item ids it can rank (None when the pyfunc does not say).
    catalogue: frozenset[str] | None = None
    notes: list[str] = field(default_factory=list)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    batcher: MicroBatcher[Any, Any] | None = None
    inflight: int = 0

    def info(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "variant": self.variant,
            "loaded_at": self.loaded_at.isoformat(),
            "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- output checks


def _columns(frame: Any, expected: tuple[str, ...], n: int, what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame) or not set(expected) <= set(frame.columns):
        got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise ContractError(
            f"{what}: output breaks the contract: expected columns {list(expected)}, got {got}"
        )
    if len(frame) != n:
        raise ContractError(f"{what}: {len(frame)} output rows for {n} inputs")
    return frame.reset_index(drop=True)


def intent_results(frame: Any, n: int, oos_label: str, what: str) -> list[dict[str, Any]]:
    """Contract rows -> response predictions, refusing a frame that breaks the contract."""
    frame = _columns(frame, INTENT_PYFUNC_OUTPUT, n, what)
    out = []
    for label, confidence, raw in zip(
        frame["label"], frame["confidence"], frame["raw_label"], strict=True
    ):
        conf = float(confidence)
        if not isinstance(label, str) or not label or not math.isfinite(conf) or not 0 <= conf <= 1:
            raise ContractError(
                f"{what}: output breaks the contract: label {label!r}, confidence {confidence!r} "
                "(a non-empty label and a confidence in [0, 1] are required)"
            )
        out.append(
            {
                "label": label,
                "confidence": conf,
                "raw_label": str(raw),
                "out_of_scope": label == oos_label,
            }
        )
    return out


def recommender_results(frame: Any, requests: list[RecRequest], what: str) -> list[dict[str, Any]]:
    frame = _columns(frame, RECOMMENDER_PYFUNC_OUTPUT, len(requests), what)
    out = []
    for (history, k), items, scores in zip(requests, frame["items"], frame["scores"], strict=True):
        items, scores = list(items)[:k], [float(s) for s in list(scores)[:k]]
        if len(items) != len(scores) or not all(math.isfinite(s) for s in scores):
            raise ContractError(
                f"{what}: output breaks the contract: {len(items)} items with "
                f"{len(scores)} scores (finite scores, one per item, required)"
            )
        leaked = set(map(str, items)) & set(history)
        if leaked:
            raise ContractError(f"{what}: recommends items of the history: {sorted(leaked)[:5]}")
        out.append({"items": [str(i) for i in items], "scores": scores})
    return out


def smoke_check(served: ServedModel) -> dict[str, Any]:
    """Run the served object on the contract example and the version's input example; raise
    ContractError (or whatever the model raises) when the output is not what callers expect."""
    from ml.release.registry import contract_example

    data, call_params = contract_example(served.family)
    example = served.input_example
    column = (INTENT_PYFUNC_INPUT if served.family == "intent" else RECOMMENDER_PYFUNC_INPUT)[0]
    if isinstance(example, pd.DataFrame) and column in example.columns:
        data = pd.concat([data, example[[column]]], ignore_index=True)
    if served.family == "intent":
        inputs: list[Any] = [str(t) for t in data[column] if isinstance(t, str) and t.strip()]
    else:
        k = int((call_params or {}).get("k", 5))
        inputs = [(tuple(str(i) for i in (h if h is not None else [])), k) for h in data[column]]
    results = served.predict(inputs)
    if len(results) != len(inputs):
        raise ContractError(
            f"{served.family} v{served.version}: {len(results)} results for {len(inputs)} inputs"
        )
    return {"rows": len(inputs)}


# ----------------------------------------------------------------------------- loading


def _load_pyfunc(uri: str) -> Any:
    """The registered pyfunc. MLflow prepends the model's code path (a copy of ``ml``) to
    sys.path on every load; ``ml`` is already imported from this checkout, so the entry is dead
    weight that would grow with every hot swap of a long-running server: it is removed again."""
    from ml.stack.model_store import load_model

    before = list(sys.path)
    try:
        return load_model(uri)
    finally:
        sys.path[:] = before


def _input_example(pyfunc: Any) -> pd.DataFrame | None:
    try:
        example = pyfunc.input_example
    except Exception:  # an unreadable example is not fatal: the contract example still runs
        return None
    return example if isinstance(example, pd.DataFrame) else None


def _fast_intent(version: ModelVersion, params: Params) -> tuple[Any, str] | None:
    """(model, variant) of the version's ONNX export when it may be served, else None."""
    tags = dict(version.tags or {})
    if params.serving.fast_variant != "auto" or tags.get(FAST_VARIANT_OK_TAG) != "true":
        return None
    path = tags.get(FAST_VARIANT_PATH_TAG)
    if not path or not version.run_id:
        raise ValueError(f"tag {FAST_VARIANT_PATH_TAG} or the run id is missing")
    try:
        module = importlib.import_module(ONNX_MODULE)
    except ImportError as exc:
        raise ValueError(f"{ONNX_MODULE} is not available ({exc})") from exc
    import mlflow

    folder = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=path)
    return module.load_onnx_intent_model(folder), tags.get(FAST_VARIANT_TAG) or "onnx"


def _served_intent(version: ModelVersion, params: Params, base: dict[str, Any]) -> ServedModel:
    what = f"intent v{version.version}"
    notes: list[str] = []
    try:
        fast = _fast_intent(version, params)
    except Exception as exc:  # a bad export must not block the torch model
        notes.append(f"fast variant not used: {exc}")
        log.warning("%s: fast variant not used: %s", what, exc)
        fast = None
    if fast is not None:
        model, variant = fast
        oos = str(getattr(model, "oos_label", params.intent.oos_label))

        def predict_fast(texts: list[str]) -> list[dict[str, Any]]:
            return intent_results(model.predict(texts), len(texts), oos, what)

        return ServedModel(**base, variant=variant, predict=predict_fast, notes=notes)

    from ml.models.intent.model import IntentModel

    pyfunc = _load_pyfunc(f"models:/{version.name}/{version.version}")
    unwrap = getattr(pyfunc, "unwrap_python_model", None)
    inner = getattr(unwrap() if unwrap else None, "model", None)
    if isinstance(inner, IntentModel):
        net: IntentModel = inner

        def predict_torch(texts: list[str]) -> list[dict[str, Any]]:
            return intent_results(net.predict(texts), len(texts), net.oos_label, what)

        predict, variant = predict_torch, "torch"
    else:
        oos = params.intent.oos_label

        def predict_pyfunc(texts: list[str]) -> list[dict[str, Any]]:
            frame = pyfunc.predict(pd.DataFrame({INTENT_PYFUNC_INPUT[0]: texts}))
            return intent_results(frame, len(texts), oos, what)

        predict, variant = predict_pyfunc, "pyfunc"
    return ServedModel(
        **base, variant=variant, predict=predict, input_example=_input_example(pyfunc), notes=notes
    )


def _served_recommender(version: ModelVersion, base: dict[str, Any]) -> ServedModel:
    from ml.models.recommender.pyfunc import score_frame
    from ml.models.recommender.scoring import as_recommender

    what = f"recommender v{version.version}"
    pyfunc = _load_pyfunc(f"models:/{version.name}/{version.version}")
    rec = as_recommender(pyfunc)

    def predict(requests: list[RecRequest]) -> list[dict[str, Any]]:
        k = max(k for _, k in requests)  # one pass at the largest k; each request cut to its own
        histories = [list(h) for h, _ in requests]
        if rec is not None:
            frame = score_frame(rec, histories, k)
        else:
            frame = pyfunc.predict(
                pd.DataFrame({RECOMMENDER_PYFUNC_INPUT[0]: histories}), params={"k": k}
            )
        return recommender_results(frame, requests, what)

    return ServedModel(
        **base,
        variant="torch" if rec is not None else "pyfunc",
        predict=predict,
        input_example=_input_example(pyfunc),
        catalogue=frozenset(rec.item_ids) if rec is not None else None,
    )


def warm_up(families: list[str]) -> None:
    """Import what loading the families' models will need (torch, transformers' BERT, which
    MiniLM is), so the first load is shorter; runs in a worker thread while the registry is
    first read. Failures are left for the real load to report."""
    modules = ["mlflow.pyfunc", "torch"]
    if "intent" in families:
        modules += ["ml.models.intent.model", "transformers.models.bert.modeling_bert"]
    if "recommender" in families:
        modules += ["ml.models.recommender.model", "ml.models.recommender.scoring"]
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the load itself will say what is wrong
            log.debug("warm-up import %s failed: %s", name, exc)


def load_served_model(
    version: ModelVersion, family: str, alias: str, params: Params
) -> ServedModel:
    """Load ``version`` (resolved from ``alias``) for serving; raises whatever loading raises.
    Blocking (seconds): the watcher calls it in a worker thread."""
    base = {
        "family": family,
        "name": str(version.name),
        "version": str(version.version),
        "alias": alias,
        "run_id": version.run_id,
    }
    if family == "intent":
        return _served_intent(version, params, base)
    if family == "recommender":
        return _served_recommender(version, base)
    raise ShopflowError(f"serving has no loader for model family {family!r}")
