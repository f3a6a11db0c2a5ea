"""Classification metrics, calibration (ECE) and the diagnostic files logged with each run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Equal-width confidence bins: count, mean confidence, accuracy per bin."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        sel = which == b
        rows.append(
            {
                "lower": edges[b],
                "upper": edges[b + 1],
                "count": int(sel.sum()),
                "confidence": float(conf[sel].mean()) if sel.any() else np.nan,
                "accuracy": float(hit[sel].mean()) if sel.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> float:
    """ECE: bin-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    bins = reliability_bins(confidence, correct, n_bins)
    used = bins[bins["count"] > 0]
    if used.empty:
        return 0.0
    gap = (used["accuracy"] - used["confidence"]).abs()
    return float((gap * used["count"]).sum() / used["count"].sum())


def write_diagnostics(
    out_dir: Path,
    *,
    texts: Sequence[str],
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidence: np.ndarray,
    labels: Sequence[str],
    title: str,
    n_misclassified: int = 50,
    seed: int = 0,
) -> dict[str, Path]:
    """Confusion-matrix PNG, per-intent report, reliability plot with ECE, misclassified sample.

    ``y_pred`` is the argmax label (calibration is about the top-class confidence).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import classification_report, confusion_matrix

    out_dir.mkdir(parents=True, exist_ok=True)
    present = [lab for lab in labels if lab in set(y_true) | set(y_pred)]
    files: dict[str, Path] = {}

    cm = confusion_matrix(y_true, y_pred, labels=present)
    size = max(6.0, 0.35 * len(present))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(present)), present, rotation=90, fontsize=7)
    ax.set_yticks(range(len(present)), present, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({title})")
    fig.tight_layout()
    files["confusion_matrix"] = out_dir / "confusion_matrix.png"
    fig.savefig(files["confusion_matrix"], dpi=110)
    plt.close(fig)

    report = classification_report(
        y_true, y_pred, labels=present, output_dict=True, zero_division=0
    )
    files["per_intent_report"] = out_dir / "per_intent_report.json"
    files["per_intent_report"].write_text(json.dumps(report, indent=2), encoding="utf-8")

    correct = np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)
    bins = reliability_bins(confidence, correct)
    ece = expected_calibration_error(confidence, correct)
    fig, ax = plt.subplots(figsize=(5, 5))
    used = bins[bins["count"] > 0]
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.bar(
        used["lower"],
        used["accuracy"],
        width=1 / len(bins),
        align="edge",
        alpha=0.7,
        edgecolor="black",
        label="accuracy",
    )
    ax.plot(used["confidence"], used["accuracy"], "o", color="darkred", label="bin mean conf.")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability ({title}), ECE = {ece:.4f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    files["reliability"] = out_dir / "reliability.png"
    fig.savefig(files["reliability"], dpi=110)
    plt.close(fig)

    wrong = pd.DataFrame(
        {
            "text": list(texts),
            "label": list(y_true),
            "predicted": list(y_pred),
            "confidence": np.asarray(confidence),
        }
    )[~correct]
    sample = (
        wrong.sample(min(n_misclassified, len(wrong)), random_state=seed) if len(wrong) else wrong
    )
    files["misclassified"] = out_dir / "misclassified_sample.csv"
    sample.sort_values("confidence", ascending=False).to_csv(files["misclassified"], index=False)
    return files
