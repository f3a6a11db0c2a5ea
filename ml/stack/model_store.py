"""The MLflow model store as every layer reads it: registered-model names, aliases, the
registration a training step wrote, loading a registered model, tagging a version.

Moving aliases (promotion, rollback, history) is a release decision and lives in
``ml.release.registry``; this module only reads and tags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import InputError
from ml.core.families import get_family

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from ml.core.config import Params

CHAMPION = "champion"
PREVIOUS = "previous-champion"
# The version the gate last compared with the champion: what serving runs in shadow.
CHALLENGER = "challenger"
# An intent version's fast export, set by `evaluate intent` and read by the gate and serving:
# the variant's name, its artifact path in the training run, its test accuracy minus the
# model's, and "true" only when that passed intent.fast_variant.max_accuracy_drop.
FAST_VARIANT_TAG = "shopflow.fast_variant"
FAST_VARIANT_PATH_TAG = "shopflow.fast_variant_path"
FAST_VARIANT_DELTA_TAG = "shopflow.fast_variant_accuracy_delta"
FAST_VARIANT_OK_TAG = "shopflow.fast_variant_ok"
FAST_VARIANT_TAGS = (
    FAST_VARIANT_TAG,
    FAST_VARIANT_PATH_TAG,
    FAST_VARIANT_DELTA_TAG,
    FAST_VARIANT_OK_TAG,
)
REGISTRATION_FILE = "registration.json"
# On a model version: {dataset: [partition dates]} it was trained on (drift's reference data,
# the gate's "new data" slice).
TRAINED_ON_TAG = "shopflow.trained_on"


def model_name(params: Params, family: str) -> str:
    return get_family(family).model_name(params)


def read_registration(models_dir: Path, family: str) -> dict[str, Any]:
    """What the training step registered: ``<models>/<family>/registration.json``."""
    path = Path(models_dir) / family / REGISTRATION_FILE
    if not path.is_file():
        raise InputError(f"{path}: no registration.json; run `python -m ml train {family}` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    missing = {"run_id", "version", "model_name"} - set(data)
    if missing:
        raise InputError(f"{path}: missing keys {sorted(missing)}")
    return dict(data)


def scoring_source(family_models_dir: Path) -> str:
    """What evaluation scores: the artifact registration.json names (the registered version, as
    the gate and serving load it), or the local model folder when training registered nothing."""
    path = Path(family_models_dir) / REGISTRATION_FILE
    if path.is_file():
        uri = json.loads(path.read_text(encoding="utf-8")).get("model_uri")
        if uri:
            return str(uri)
    return str(family_models_dir)


def get_client(params: Params) -> MlflowClient:
    """An MlflowClient on the configured store (MLFLOW_TRACKING_URI wins over params.yaml)."""
    from mlflow.tracking import MlflowClient

    from ml.stack.tracking import activate_tracking_uri

    uri, registry_uri = activate_tracking_uri(params.mlflow)
    return MlflowClient(tracking_uri=uri, registry_uri=registry_uri)


def get_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version behind ``alias``, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_model(uri: str) -> Any:
    """``mlflow.pyfunc.load_model``; an artifact-store failure (keys, endpoint, bucket) becomes
    a StackError naming the setting to fix instead of a botocore traceback."""
    import mlflow

    from ml.stack.s3_errors import stack_errors_explained

    with stack_errors_explained(f"{uri} cannot be loaded from the artifact store"):
        return mlflow.pyfunc.load_model(uri)


def tag_registered_version(
    params: Params, registration: dict[str, Any], key: str, value: Any
) -> bool:
    """Set tag ``key`` (JSON of ``value``) on the version a training step registered
    (``registration``: its model_name and version); False when it registered none."""
    if not registration.get("version"):
        return False
    client = get_client(params)
    client.set_model_version_tag(
        registration["model_name"], str(registration["version"]), key, json.dumps(value)
    )
    return True
