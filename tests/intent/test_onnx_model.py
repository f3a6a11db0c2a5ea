"""The ONNX fast path: export, predictions against the torch model, and evaluation's check."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from ml.core.errors import InputError
from ml.core.schemas import INTENT_PYFUNC_OUTPUT
from ml.models.intent.data import load_labels, load_split
from ml.models.intent.evaluate import FAST_VARIANT_ARTIFACT, evaluate_intent
from ml.models.intent.model import IntentModel
from ml.models.intent.onnx_model import (
    ONNX_FILE,
    OnnxIntentModel,
    export,
    load_onnx_intent_model,
)
from ml.models.intent.scoring import score_intent_model

BAD_TEXTS: list[Any] = ["", None, "   ", 42, float("nan")]


@pytest.fixture(scope="module")
def exports(trained: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained tiny model exported once in fp32 and once in int8."""
    bundle = trained["out"] / "model"
    tmp = tmp_path_factory.mktemp("onnx")
    return {
        "bundle": bundle,
        "fp32": export(bundle, tmp / "fp32", quantize=False),
        "int8": export(bundle, tmp / "int8", quantize=True),
    }


def _texts(trained: dict[str, Any]) -> list[Any]:
    params = trained["params"]
    test = load_split(params.paths.processed, "test", load_labels(params.paths.processed))
    # A huge text (cut to max_text_chars, then max_length tokens) and the bad rows.
    return [*test["text"].tolist(), "where is my parcel " * 3000, *BAD_TEXTS]


def _threshold_between_rows(confidences: np.ndarray) -> float:
    """A threshold near the median that is far (in confidence) from every row."""
    values = np.unique(confidences[confidences > 0])
    middle = len(values) // 2
    window = range(max(1, middle - 5), min(len(values), middle + 6))
    widest = max(window, key=lambda i: values[i] - values[i - 1])
    assert values[widest] - values[widest - 1] > 1e-3, "no clear gap near the median"
    return float((values[widest] + values[widest - 1]) / 2)


def test_fp32_export_predicts_like_the_torch_model(
    trained: dict[str, Any], exports: dict[str, Path]
) -> None:
    texts = _texts(trained)
    torch_model = IntentModel.load(exports["bundle"], device="cpu")
    fast = load_onnx_intent_model(exports["fp32"], intra_op_threads=1)
    # Small batches: several batch shapes and sequence lengths go through the one graph.
    torch_model.batch_size = fast.batch_size = 5
    expected, got = torch_model.predict(texts), fast.predict(texts)
    assert list(got.columns) == list(INTENT_PYFUNC_OUTPUT)
    assert got["label"].tolist() == expected["label"].tolist()
    assert got["raw_label"].tolist() == expected["raw_label"].tolist()
    np.testing.assert_allclose(got["confidence"], expected["confidence"], atol=1e-3, rtol=0)
    # The threshold rule: near the median confidence about half the rows become out_of_scope.
    # The threshold sits in the widest gap between neighbouring confidences around the median,
    # never on a row's own confidence, which the two runtimes reproduce only to ~1e-6.
    threshold = _threshold_between_rows(expected["confidence"].to_numpy())
    torch_model.threshold = fast.threshold = threshold
    expected, got = torch_model.predict(texts), fast.predict(texts)
    assert got["label"].tolist() == expected["label"].tolist()
    assert 0 < (got["label"] == fast.oos_label).sum() < len(texts)
    # Probabilities of every class, not only the top one.
    good = [t for t in texts if isinstance(t, str) and t.strip()]
    np.testing.assert_allclose(
        fast.predict_proba(good), torch_model.predict_proba(good), atol=1e-3, rtol=0
    )


def test_int8_export_stays_close_to_the_torch_model(
    trained: dict[str, Any], exports: dict[str, Path]
) -> None:
    texts = [t for t in _texts(trained) if isinstance(t, str) and t.strip()]
    expected = IntentModel.load(exports["bundle"], device="cpu").predict_proba(texts)
    got = load_onnx_intent_model(exports["int8"]).predict_proba(texts)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(got - expected).max() < 0.05
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.95


def test_bad_texts_get_the_torch_models_defined_result(exports: dict[str, Path]) -> None:
    fast = load_onnx_intent_model(exports["int8"])
    expected = IntentModel.load(exports["bundle"], device="cpu").predict(BAD_TEXTS)
    got = fast.predict(BAD_TEXTS)
    pd.testing.assert_frame_equal(got, expected)
    assert got["label"].tolist() == [fast.oos_label] * len(BAD_TEXTS)
    assert got["confidence"].tolist() == [0.0] * len(BAD_TEXTS)
    assert fast.predict([]).empty


def test_export_folder_reuses_the_bundle_and_has_dynamic_axes(exports: dict[str, Path]) -> None:
    import onnx

    bundle_meta = json.loads((exports["bundle"] / "intent_meta.json").read_text())
    meta = json.loads((exports["int8"] / "intent_meta.json").read_text())
    assert {k: v for k, v in meta.items() if k != "onnx"} == bundle_meta
    assert meta["onnx"]["variant"] == "onnx-int8"
    assert meta["onnx"]["fused_operators"].get("Attention", 0) >= 1  # the BERT fusions applied
    assert (exports["int8"] / "tokenizer" / "tokenizer.json").is_file()
    assert not (exports["int8"] / "encoder").exists()  # no torch weights travel with it
    graph = onnx.load(str(exports["int8"] / ONNX_FILE)).graph
    for tensor in graph.input:
        dims = [d.dim_param for d in tensor.type.tensor_type.shape.dim]
        assert dims == ["batch", "sequence"], tensor.name
    ops = {node.op_type for node in graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} & ops  # weights really are int8
    fp32_ops = {node.op_type for node in onnx.load(str(exports["fp32"] / ONNX_FILE)).graph.node}
    assert "DynamicQuantizeLinear" not in fp32_ops


def test_session_threads_and_the_one_scoring_path(
    trained: dict[str, Any], exports: dict[str, Path]
) -> None:
    fast = load_onnx_intent_model(exports["int8"], intra_op_threads=1)
    assert isinstance(fast, OnnxIntentModel) and fast.variant == "onnx-int8"
    assert fast.session.get_session_options().intra_op_num_threads == 1
    params = trained["params"]
    test = load_split(params.paths.processed, "test", load_labels(params.paths.processed))
    # score_intent_model takes the folder as it takes a bundle or a URI.
    by_folder = score_intent_model(str(exports["int8"]), test)
    by_object = score_intent_model(fast, test)
    pd.testing.assert_frame_equal(by_folder, by_object)
    with pytest.raises(InputError, match="not an ONNX intent model folder"):
        load_onnx_intent_model(exports["bundle"])


def _version_tags(params: Any, reg: dict[str, Any]) -> dict[str, str]:
    client = MlflowClient(
        tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri
    )
    return dict(client.get_model_version(reg["model_name"], reg["version"]).tags)


def test_evaluate_logs_the_checked_export_and_tags_the_version(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    import mlflow

    params, out = trained["params"], trained["out"]
    reports = tmp_path / "reports"
    result = evaluate_intent(params, params.paths.processed, out, reports)
    metrics = json.loads((reports / "metrics.json").read_text())
    fast = metrics["fast_variant"]
    assert result["fast_variant"] == fast
    assert fast["variant"] == "onnx-int8"
    assert fast["accuracy_delta"] == pytest.approx(fast["accuracy"] - metrics["accuracy"])
    assert fast["ok"] is (fast["accuracy_delta"] >= -params.intent.fast_variant.max_accuracy_drop)
    assert 0.0 <= fast["agreement"] <= 1.0 and fast["speedup"] > 0

    reg = json.loads((out / "registration.json").read_text())
    tags = _version_tags(params, reg)
    assert tags["shopflow.fast_variant"] == "onnx-int8"
    assert tags["shopflow.fast_variant_path"] == FAST_VARIANT_ARTIFACT
    assert float(tags["shopflow.fast_variant_accuracy_delta"]) == round(fast["accuracy_delta"], 4)
    assert tags["shopflow.fast_variant_ok"] == ("true" if fast["ok"] else "false")

    client = MlflowClient(
        tracking_uri=params.mlflow.tracking_uri, registry_uri=params.mlflow.tracking_uri
    )
    run = client.get_run(reg["run_id"])
    assert run.data.metrics["fast_variant_accuracy"] == fast["accuracy"]
    assert "test_fast_variant_accuracy" not in run.data.metrics
    # What serving does: download the tagged path from the version's run and load it. (Not
    # mlflow.set_tracking_uri: it exports MLFLOW_TRACKING_URI to every later test of the process.)
    local = mlflow.artifacts.download_artifacts(
        run_id=reg["run_id"],
        artifact_path=tags["shopflow.fast_variant_path"],
        dst_path=str(tmp_path / "download"),
        tracking_uri=params.mlflow.tracking_uri,
    )
    served = load_onnx_intent_model(local)
    test = load_split(params.paths.processed, "test", load_labels(params.paths.processed))
    frame = score_intent_model(served, test)
    assert frame["correct"].mean() == fast["accuracy"]


def test_a_failed_export_leaves_evaluation_green_and_the_variant_off(
    trained: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    params, out = trained["params"], trained["out"]
    # As in an image without ONNX Runtime's optimiser: its import fails inside export().
    monkeypatch.setitem(sys.modules, "onnxruntime.transformers.optimizer", None)
    with caplog.at_level(logging.WARNING, logger="ml.models.intent.evaluate"):
        result = evaluate_intent(params, params.paths.processed, out, tmp_path / "reports")
    warnings = [r for r in caplog.records if r.name == "ml.models.intent.evaluate"]
    assert len(warnings) == 1 and "onnxruntime.transformers.optimizer" in warnings[0].getMessage()
    assert result["logged_to_run"] is True and result["accuracy"] >= 0
    fast = json.loads((tmp_path / "reports" / "metrics.json").read_text())["fast_variant"]
    assert fast["ok"] is False and fast["error"].startswith("ModuleNotFoundError")
    reg = json.loads((out / "registration.json").read_text())
    tags = _version_tags(params, reg)
    assert tags["shopflow.fast_variant_ok"] == "false"
    # A path or delta left by an earlier evaluation of this version would point at nothing.
    assert "shopflow.fast_variant_path" not in tags
    assert "shopflow.fast_variant_accuracy_delta" not in tags


def test_switched_off_no_export_and_no_section(trained: dict[str, Any], tmp_path: Path) -> None:
    params = trained["params"].model_copy(deep=True)
    params.intent.fast_variant.enabled = False
    result = evaluate_intent(
        params, params.paths.processed, trained["out"], tmp_path / "reports", log_to_mlflow=False
    )
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert "fast_variant" not in metrics and "fast_variant" not in result
