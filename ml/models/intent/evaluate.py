"""Evaluation on the frozen test split, with baselines in the same run.

Writes ``<reports>/metrics.json`` (DVC metrics) and ``<reports>/predictions.parquet`` (the
scored frame of :mod:`ml.models.intent.scoring`, what the gate compares), logs both to the training
run and tags the registered version with the key metrics. The model scored is the registered
artifact named in registration.json (as the gate and serving load it); every number comes from
:mod:`ml.core.metrics`, so ``metrics.json`` and the gate report agree to the last digit.
``metrics.json`` also says which test set it is: ``split_policy`` from preprocessing's stats.json
(an official test fold kept as published, or a hash / stratified split).

The fast variant (``intent.fast_variant``): the model's ONNX Runtime export is scored on the same
test rows by the same scorer; it is logged to the training run under ``fast_variant/`` and the
registered version gets the ``shopflow.fast_variant*`` tags serving reads (ok only when its
accuracy is within ``max_accuracy_drop`` of the model's). A failed export never fails evaluation.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core import metrics as m
from ml.core.stats import paired_difference
from ml.models.intent import baseline as base
from ml.models.intent.data import load_labels, load_split, load_split_policy
from ml.models.intent.scoring import SCORE_COLUMNS, frame_metrics, score_intent_model
from ml.stack.model_store import (
    FAST_VARIANT_DELTA_TAG,
    FAST_VARIANT_OK_TAG,
    FAST_VARIANT_PATH_TAG,
    FAST_VARIANT_TAG,
    FAST_VARIANT_TAGS,
)

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.models.intent.model import IntentModel

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = SCORE_COLUMNS
MARGIN_RESAMPLES = 1000
# Where the export goes in the training run's artifacts (serving downloads it from there).
FAST_VARIANT_ARTIFACT = "fast_variant"
# At most this many test texts time the two models for the (informational) speedup.
SPEEDUP_TEXTS = 512


def _frozen_baseline_scores(
    models_dir: Path, base_model: Path, texts: list[str], max_length: int
) -> np.ndarray:
    from ml.models.intent.model import build_net, embed_texts

    coef, intercept, labels = base.load_linear(models_dir / "baseline_lr.npz")
    net, tokenizer = build_net(base_model, len(labels), 0.0)
    emb = embed_texts(net, tokenizer, texts, max_length=max_length)
    return base.linear_proba(emb, coef, intercept)


def margin_with_interval(
    frame: pd.DataFrame, other_pred: list[str], seed: int, confidence: float = 0.95
) -> dict[str, Any]:
    """Macro-F1 and accuracy of the model's argmax minus another predictor's on the same rows,
    with paired bootstrap intervals (like with like: no out-of-scope threshold on either)."""
    (label, raw, other), classes = m.encode_labels(
        frame["label"], frame["raw_predicted"], other_pred
    )
    n, k = len(label), max(len(classes), 1)

    def interval(a: Any, b: Any) -> dict[str, Any]:
        return paired_difference(
            a, b, n, resamples=MARGIN_RESAMPLES, seed=seed, confidence=confidence
        )

    f1 = interval(lambda w: m.macro_f1(label, raw, k, w), lambda w: m.macro_f1(label, other, k, w))
    acc = interval(lambda w: m.accuracy(label == raw, w), lambda w: m.accuracy(label == other, w))
    return {"macro_f1": f1, "accuracy": acc}


@dataclass
class _Scored:
    """The scored model's test predictions (the scorer's frame) and the columns used below."""

    source: str
    model: IntentModel
    frame: pd.DataFrame
    y_true: list[str]
    raw: list[str]
    confidence: np.ndarray
    meta: dict[str, Any]  # the bundle's intent_meta.json


@dataclass
class _Baselines:
    """The majority-class and frozen-encoder + LR baselines, and the model's margins over them."""

    majority: str
    majority_metrics: dict[str, Any]
    frozen_probs: np.ndarray
    frozen_pred: list[str]
    frozen_metrics: dict[str, Any]
    over_frozen: dict[str, Any]
    over_majority: dict[str, Any]


@dataclass
class _FastVariant:
    """The fast variant's check: its section of metrics.json, and the exported folder to log
    (None when the export failed)."""

    summary: dict[str, Any]
    folder: Path | None

    def mlflow_metrics(self) -> dict[str, float]:
        names = ("accuracy", "accuracy_delta", "raw_accuracy_delta", "agreement", "speedup")
        out = {f"fast_variant_{k}": float(self.summary[k]) for k in names if k in self.summary}
        return out | {"fast_variant_ok": float(self.summary["ok"])}

    def version_tags(self) -> dict[str, str]:
        """The version tags the gate and serving read (ml.stack.model_store); ok is "true" only
        when the check passed and the export is in the run."""
        ok = bool(self.summary["ok"]) and self.folder is not None
        tags = {FAST_VARIANT_TAG: self.summary["variant"]}
        if self.folder is not None:
            tags[FAST_VARIANT_PATH_TAG] = FAST_VARIANT_ARTIFACT
        if "accuracy_delta" in self.summary:
            tags[FAST_VARIANT_DELTA_TAG] = f"{self.summary['accuracy_delta']:.4f}"
        return tags | {FAST_VARIANT_OK_TAG: "true" if ok else "false"}


def _check_fast_variant(
    params: Params,
    models_dir: Path,
    test_df: pd.DataFrame,
    scored: _Scored,
    final: dict[str, float],
    work: Path,
) -> _FastVariant | None:
    """Export the model bundle to ONNX under ``work`` and score it like the model (same rows,
    same scorer); None when ``intent.fast_variant.enabled`` is off. Any failure of the export or
    of its scoring gives ok false and one warning, never a failed evaluation."""
    cfg = params.intent.fast_variant
    if not cfg.enabled:
        return None
    from ml.models.intent.onnx_model import export, load_onnx_intent_model, variant_name

    variant = variant_name(cfg.quantize)
    summary: dict[str, Any] = {
        "variant": variant,
        "artifact_path": FAST_VARIANT_ARTIFACT,
        "max_accuracy_drop": cfg.max_accuracy_drop,
    }
    try:
        folder = export(models_dir / "model", work / FAST_VARIANT_ARTIFACT, quantize=cfg.quantize)
        fast_model = load_onnx_intent_model(folder, intra_op_threads=cfg.intra_op_threads)
        frame = score_intent_model(fast_model, test_df)
        speed = _speedup(scored.model, fast_model, test_df["text"].tolist())
    except Exception as exc:  # exporter, optimiser, quantiser and runtime raise many types
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        log.warning(
            "fast variant %s unavailable (serving keeps the torch model): %s", variant, reason
        )
        return _FastVariant({**summary, "ok": False, "error": reason}, None)
    fast = frame_metrics(frame)
    delta = fast["accuracy"] - final["accuracy"]
    # The tolerance keeps a drop of exactly max_accuracy_drop (e.g. 1 row in 100) a pass.
    ok = delta >= -cfg.max_accuracy_drop - 1e-9
    if not ok:
        log.warning(
            "fast variant %s not used: test accuracy %.4f is %.4f below the model's (max %.4f)",
            variant,
            fast["accuracy"],
            -delta,
            cfg.max_accuracy_drop,
        )
    summary |= {
        "ok": ok,
        "accuracy": fast["accuracy"],
        "macro_f1": fast["macro_f1"],
        "raw_accuracy": fast["raw_accuracy"],
        "accuracy_delta": delta,
        "raw_accuracy_delta": fast["raw_accuracy"] - final["raw_accuracy"],
        # Rows where both give the served label: how often a user would see a difference.
        "agreement": float((frame["predicted"] == scored.frame["predicted"]).mean()),
        **speed,
    }
    return _FastVariant(summary, folder)


def _speedup(model: IntentModel, fast_model: Any, texts: list[str]) -> dict[str, Any]:
    """Texts/s of both models on (at most SPEEDUP_TEXTS of) the test texts, in their own
    batches: informational (a shared machine's load moves it), not part of the check."""
    texts = texts[:SPEEDUP_TEXTS]
    seconds = {}
    for name, scorer in (("torch", model), ("fast", fast_model)):
        scorer.predict_proba(texts[:8])  # warm-up: first-call allocations
        start = time.perf_counter()
        scorer.predict_proba(texts)
        seconds[name] = max(time.perf_counter() - start, 1e-9)
    return {
        "texts_per_second": len(texts) / seconds["fast"],
        "torch_texts_per_second": len(texts) / seconds["torch"],
        "torch_device": str(model.device),
        "speedup": seconds["torch"] / seconds["fast"],
    }


def evaluate_intent(
    params: Params,
    processed_dir: str | Path,
    models_dir: str | Path,
    reports_dir: str | Path,
    *,
    log_to_mlflow: bool = True,
) -> dict[str, Any]:
    """Evaluate the trained model on the test split against the two baselines."""
    processed_dir, models_dir, reports_dir = (
        Path(processed_dir),
        Path(models_dir),
        Path(reports_dir),
    )
    labels, train_df, test_df = _load_eval_frames(processed_dir)
    from ml.stack.tracking import activate_tracking_uri

    # The registered version lives in the configured store, not MLflow's default (./mlflow.db).
    activate_tracking_uri(params.mlflow)
    scored = _score_test_split(models_dir, test_df)
    final = frame_metrics(scored.frame)
    baselines = _compare_baselines(params, models_dir, labels, train_df, test_df, scored)
    metrics = _evaluation_metrics(params, test_df, scored, final, baselines)
    # Which test set this is: an official (frozen) test fold or one split off by preprocessing.
    metrics = {"split_policy": load_split_policy(processed_dir), **metrics}
    # The export only has to live until it is logged to the run.
    with tempfile.TemporaryDirectory(prefix="shopflow-fast-variant-") as tmp:
        fast = _check_fast_variant(params, models_dir, test_df, scored, final, Path(tmp))
        if fast is not None:
            metrics["fast_variant"] = fast.summary
        diag = _write_reports(params, reports_dir, metrics, scored, test_df, labels)
        result = {
            "metrics_file": str(reports_dir / "metrics.json"),
            "predictions_file": str(reports_dir / "predictions.parquet"),
            "scored_model": scored.source,
            "split_policy": metrics["split_policy"],
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
            "raw_macro_f1": metrics["raw_macro_f1"],
            "ece": metrics["ece"],
            "margin": metrics["margin"],
            "diagnostics": {k: str(v) for k, v in diag.items()},
        }
        if fast is not None:
            result["fast_variant"] = fast.summary
        registration = models_dir / "registration.json"
        if log_to_mlflow and registration.is_file():
            registered = json.loads(registration.read_text(encoding="utf-8"))
            _log_to_training_run(params, registered, metrics, reports_dir, fast)
            result["logged_to_run"] = True
        elif log_to_mlflow:
            log.warning("%s missing: evaluation not logged to MLflow", registration)
    return result


def _load_eval_frames(processed_dir: Path) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    labels = load_labels(processed_dir)
    train_df = load_split(processed_dir, "train", labels)
    # The scorer's row order (by example_id), so texts, predictions and plots line up.
    test_df = (
        load_split(processed_dir, "test", labels)
        .sort_values("example_id", kind="stable")
        .reset_index(drop=True)
    )
    return labels, train_df, test_df


def _score_test_split(models_dir: Path, test_df: pd.DataFrame) -> _Scored:
    """Score the registered artifact (the local bundle when nothing was registered)."""
    from ml.models.intent.model import IntentModel
    from ml.stack.model_store import scoring_source

    source = scoring_source(models_dir)
    local = IntentModel.load(models_dir / "model")
    pred = score_intent_model(local if Path(source).is_dir() else source, test_df)
    return _Scored(
        source=source,
        model=local,
        frame=pred,
        y_true=pred["label"].tolist(),
        raw=pred["raw_predicted"].tolist(),
        confidence=pred["confidence"].to_numpy(),
        meta=json.loads((models_dir / "model" / "intent_meta.json").read_text(encoding="utf-8")),
    )


def _compare_baselines(
    params: Params,
    models_dir: Path,
    labels: list[str],
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    scored: _Scored,
) -> _Baselines:
    y_true = scored.y_true
    majority = base.majority_label(train_df["label"].astype(str).tolist())
    maj_m = m.classification_metrics(y_true, [majority] * len(y_true))
    frozen_probs = _frozen_baseline_scores(
        models_dir,
        model_base(models_dir, params.intent.train.model_path),
        test_df["text"].tolist(),
        scored.model.max_length,
    )
    frozen_pred = [labels[i] for i in frozen_probs.argmax(axis=1)]
    frozen_m = m.classification_metrics(y_true, frozen_pred)
    over_frozen = margin_with_interval(scored.frame, frozen_pred, params.seed)
    over_majority = margin_with_interval(scored.frame, [majority] * len(y_true), params.seed)
    return _Baselines(
        majority=majority,
        majority_metrics=maj_m,
        frozen_probs=frozen_probs,
        frozen_pred=frozen_pred,
        frozen_metrics=frozen_m,
        over_frozen=over_frozen,
        over_majority=over_majority,
    )


def _evaluation_metrics(
    params: Params,
    test_df: pd.DataFrame,
    scored: _Scored,
    final: dict[str, float],
    baselines: _Baselines,
) -> dict[str, Any]:
    """The content of metrics.json."""
    from ml.models.intent.oos import oos_metrics, operating_point_report

    threshold = scored.model.threshold
    over_frozen, over_majority = baselines.over_frozen, baselines.over_majority
    return {
        "n_test": len(test_df),
        "scored_model": scored.source,
        **final,
        "calibration": {"bins": m.ECE_BINS, "correct": m.CALIBRATION_CORRECT},
        "oos_threshold": threshold,
        "oos": oos_metrics(
            scored.y_true,
            scored.frame["predicted"].tolist(),
            scored.raw,
            scored.confidence,
            threshold,
            params.intent.oos_label,
        ),
        # The whole trade-off on test and the chosen point with intervals (the diagnostics plot
        # oos_tradeoff.png); the threshold was chosen on validation by intent.oos_policy.
        "oos_tradeoff": {
            # Older bundles have no oos_policy: they were all rejection_precision.
            "policy": scored.meta.get("oos_policy", "rejection_precision"),
            **operating_point_report(
                scored.confidence,
                scored.y_true,
                scored.raw,
                threshold=threshold,
                oos_label=params.intent.oos_label,
                seed=params.seed,
            ),
        },
        "baselines": {
            "majority_class": {"label": baselines.majority, **baselines.majority_metrics},
            "frozen_encoder_logreg": {
                **baselines.frozen_metrics,
                "ece": m.expected_calibration_error(
                    baselines.frozen_probs.max(axis=1),
                    np.asarray(scored.y_true) == np.asarray(baselines.frozen_pred),
                ),
            },
        },
        # Margins compare like with like: argmax predictions, no out-of-scope threshold.
        "margin": {
            "macro_f1_over_majority": over_majority["macro_f1"]["difference"],
            "accuracy_over_majority": over_majority["accuracy"]["difference"],
            "macro_f1_over_frozen_logreg": over_frozen["macro_f1"]["difference"],
            "accuracy_over_frozen_logreg": over_frozen["accuracy"]["difference"],
        },
        "margin_interval": {
            "method": f"paired bootstrap over test rows, {MARGIN_RESAMPLES} resamples",
            "macro_f1_over_frozen_logreg": over_frozen["macro_f1"],
            "accuracy_over_frozen_logreg": over_frozen["accuracy"],
            "macro_f1_over_majority": over_majority["macro_f1"],
        },
    }


def _write_reports(
    params: Params,
    reports_dir: Path,
    metrics: dict[str, Any],
    scored: _Scored,
    test_df: pd.DataFrame,
    labels: list[str],
) -> dict[str, Path]:
    """metrics.json, predictions.parquet and the test diagnostics; returns the diagnostics."""
    from ml.models.intent.diagnostics import write_diagnostics

    reports_dir.mkdir(parents=True, exist_ok=True)
    (reports_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    scored.frame.to_parquet(reports_dir / "predictions.parquet", index=False)
    from ml.models.intent.diagnostics import plot_oos_tradeoff

    files = write_diagnostics(
        reports_dir / "diagnostics",
        texts=test_df["text"].tolist(),
        y_true=scored.y_true,
        y_pred=scored.raw,
        confidence=scored.confidence,
        labels=labels,
        title="test",
        seed=params.seed,
    )
    tradeoff = plot_oos_tradeoff(reports_dir / "diagnostics", metrics["oos_tradeoff"], "test")
    return {**files, "oos_tradeoff": tradeoff}


def model_base(models_dir: Path, configured: Path | None = None) -> Path:
    """The base encoder the model was trained from (for the frozen baseline); falls back to the
    configured one when the recorded folder is not on this machine (e.g. another container)."""
    from ml.models.encoders import resolve_model_path

    meta = json.loads((models_dir / "model" / "intent_meta.json").read_text(encoding="utf-8"))
    recorded = Path(meta["base_model"])
    return recorded if recorded.is_dir() else resolve_model_path(configured)


def flat_metrics(metrics: dict[str, Any], prefix: str = "test_") -> dict[str, float]:
    """Nested metrics -> flat numeric MLflow metrics (None values dropped)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{prefix}{key}_"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


def _log_to_training_run(
    params: Params,
    registration: dict[str, Any],
    metrics: dict[str, Any],
    reports_dir: Path,
    fast: _FastVariant | None = None,
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from ml.stack.tracking import resumed_run

    with resumed_run(params.mlflow, registration["run_id"]):
        # The fast variant's numbers go under their own names (fast_variant_*), not test_*.
        mlflow.log_metrics(flat_metrics({k: v for k, v in metrics.items() if k != "fast_variant"}))
        if fast is not None:
            mlflow.log_metrics(fast.mlflow_metrics())
            if fast.folder is not None:
                mlflow.log_artifacts(str(fast.folder), FAST_VARIANT_ARTIFACT)
        if metrics.get("split_policy"):
            mlflow.set_tag("split_policy", metrics["split_policy"])
        mlflow.log_artifact(str(reports_dir / "metrics.json"), "evaluation")
        mlflow.log_artifact(str(reports_dir / "predictions.parquet"), "evaluation")
        mlflow.log_artifacts(str(reports_dir / "diagnostics"), "diagnostics/test")
    if registration.get("version"):
        client = MlflowClient()
        tags = {
            "test_accuracy": metrics["accuracy"],
            "test_macro_f1": metrics["macro_f1"],
            "test_ece": metrics["ece"],
            "macro_f1_over_frozen_logreg": metrics["margin"]["macro_f1_over_frozen_logreg"],
            "oos_threshold": metrics["oos_threshold"],
        }
        for key, value in tags.items():
            client.set_model_version_tag(
                registration["model_name"], registration["version"], key, f"{value:.4f}"
            )
        if fast is not None:
            _tag_fast_variant(client, registration, fast.version_tags())


def _tag_fast_variant(client: Any, registration: dict[str, Any], tags: dict[str, str]) -> None:
    """Set the fast-variant tags and drop those this evaluation did not set: a path or delta
    left by an earlier evaluation of the version would describe an export that failed now."""
    name, version = registration["model_name"], str(registration["version"])
    current = client.get_model_version(name, version).tags
    for key in FAST_VARIANT_TAGS:
        if key in tags:
            client.set_model_version_tag(name, version, key, tags[key])
        elif key in current:
            client.delete_model_version_tag(name, version, key)
