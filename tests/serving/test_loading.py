"""Loading a registered version for serving, without HTTP: the intent fast variant (an ONNX
export logged to the version's run, chosen by the version's tags) and its fallbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml.core.config import Params, load_params
from ml.serving.loading import (
    FAST_VARIANT_OK_TAG,
    FAST_VARIANT_PATH_TAG,
    FAST_VARIANT_TAG,
    load_served_model,
    smoke_check,
)
from tests.serving.conftest import Registry, using_store

TEXTS = ["where is my order", "cancel my order", "refund the jacket please", "tell me a joke"]


def params_for(registry: Registry, tmp_path: Path, *sets: str) -> Params:
    return load_params(tmp_path / "absent.yaml", [f"mlflow.tracking_uri={registry.uri}", *sets])


@pytest.fixture(scope="module")
def fast_version(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A new intent version (v1's logged model registered again) whose run holds an ONNX export
    of the same bundle, tagged as having passed the accuracy check."""
    from ml.models.intent.onnx_model import VARIANT_FP32, export

    with using_store(registry.uri):  # module fixtures run before the autouse one
        client = registry.client()
        v1 = client.get_model_version(registry.intent, registry.versions["v1"])
        folder = export(registry.root / "intent-v1", tmp_path_factory.mktemp("onnx") / "x", False)
        client.log_artifacts(v1.run_id, str(folder), artifact_path="fast_variant")
        version = client.create_model_version(registry.intent, v1.source, run_id=v1.run_id)
        for key, value in {
            FAST_VARIANT_TAG: VARIANT_FP32,
            FAST_VARIANT_PATH_TAG: "fast_variant",
            FAST_VARIANT_OK_TAG: "true",
            "shopflow.fast_variant_accuracy_delta": "0.0",
        }.items():
            client.set_model_version_tag(registry.intent, version.version, key, value)
        return client.get_model_version(registry.intent, version.version)


def test_a_version_whose_tags_say_ok_is_served_by_its_onnx_export(
    registry: Registry, fast_version: Any, tmp_path: Path
) -> None:
    params = params_for(registry, tmp_path)
    fast = load_served_model(fast_version, "intent", "champion", params)
    assert fast.variant == "onnx-fp32" and fast.notes == []
    smoke_check(fast)
    torch_v1 = registry.client().get_model_version(registry.intent, registry.versions["v1"])
    slow = load_served_model(torch_v1, "intent", "champion", params)
    assert slow.variant == "torch"
    got, want = fast.predict(TEXTS), slow.predict(TEXTS)
    assert [g["raw_label"] for g in got] == [w["raw_label"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert g["confidence"] == pytest.approx(w["confidence"], abs=1e-3)


def test_fast_variant_off_or_a_bad_export_falls_back_to_torch(
    registry: Registry, fast_version: Any, tmp_path: Path
) -> None:
    off = load_served_model(
        fast_version,
        "intent",
        "champion",
        params_for(registry, tmp_path, "serving.fast_variant=off"),
    )
    assert off.variant == "torch" and off.notes == []
    client = registry.client()
    client.set_model_version_tag(
        registry.intent, fast_version.version, FAST_VARIANT_PATH_TAG, "no/such/folder"
    )
    try:
        broken = client.get_model_version(registry.intent, fast_version.version)
        served = load_served_model(broken, "intent", "champion", params_for(registry, tmp_path))
    finally:
        client.set_model_version_tag(
            registry.intent, fast_version.version, FAST_VARIANT_PATH_TAG, "fast_variant"
        )
    assert served.variant == "torch"
    assert served.notes and served.notes[0].startswith("fast variant not used")
    smoke_check(served)
