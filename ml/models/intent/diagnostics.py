"""The diagnostic files logged with each run: confusion matrix, per-intent report, reliability
plot (the ECE of :mod:`ml.core.metrics`, the same number metrics.json and the gate report)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.metrics import ECE_BINS, expected_calibration_error, reliability_bins


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

    out_dir.mkdir(parents=True, exist_ok=True)
    present = [lab for lab in labels if lab in set(y_true) | set(y_pred)]
    files: dict[str, Path] = {}
    files["confusion_matrix"] = _plot_confusion_matrix(out_dir, y_true, y_pred, present, title)
    files["per_intent_report"] = _write_per_intent_report(out_dir, y_true, y_pred, present)
    correct = np.asarray(y_true, dtype=object) == np.asarray(y_pred, dtype=object)
    files["reliability"], files["reliability_data"] = _write_reliability(
        out_dir, confidence, correct, title
    )
    files["misclassified"] = _write_misclassified_sample(
        out_dir, texts, y_true, y_pred, confidence, correct, n_misclassified, seed
    )
    return files


def _plot_confusion_matrix(
    out_dir: Path, y_true: Sequence[str], y_pred: Sequence[str], present: list[str], title: str
) -> Path:
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

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
    path = out_dir / "confusion_matrix.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_per_intent_report(
    out_dir: Path, y_true: Sequence[str], y_pred: Sequence[str], present: list[str]
) -> Path:
    from sklearn.metrics import classification_report

    report = classification_report(
        y_true, y_pred, labels=present, output_dict=True, zero_division=0
    )
    path = out_dir / "per_intent_report.json"
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path


def _write_reliability(
    out_dir: Path, confidence: np.ndarray, correct: np.ndarray, title: str
) -> tuple[Path, Path]:
    """Reliability plot with ECE and its bin table; returns (plot, table) paths."""
    import matplotlib.pyplot as plt

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
    ax.set_title(f"reliability ({title}), ECE = {ece:.4f} ({ECE_BINS} bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    plot = out_dir / "reliability.png"
    fig.savefig(plot, dpi=110)
    plt.close(fig)
    table = out_dir / "reliability.json"
    table.write_text(
        json.dumps(
            {
                "ece": ece,
                "bins": ECE_BINS,
                "correct": "argmax label == true label",
                "table": bins.astype(object).where(bins.notna(), None).to_dict(orient="records"),
            },
            indent=2,
            default=float,
        ),
        encoding="utf-8",
    )
    return plot, table


def _write_misclassified_sample(
    out_dir: Path,
    texts: Sequence[str],
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidence: np.ndarray,
    correct: np.ndarray,
    n_misclassified: int,
    seed: int,
) -> Path:
    """A seeded sample of the wrong predictions, most confident first."""
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
    path = out_dir / "misclassified_sample.csv"
    sample.sort_values("confidence", ascending=False).to_csv(path, index=False)
    return path


def plot_oos_tradeoff(out_dir: Path, report: dict[str, Any], title: str) -> Path:
    """The out-of-scope trade-off (ml.models.intent.oos.operating_point_report): in-scope
    accuracy against out-of-scope recall (or rejection rate, without out-of-scope rows), and the
    three rates per threshold, with the model's threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve, chosen = report["curve"], report["chosen"]
    across = "oos_recall" if report["n_oos"] else "rejection_rate"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot([p[across] for p in curve], [p["in_scope_accuracy"] for p in curve], marker=".")
    left.scatter([chosen[across]], [chosen["in_scope_accuracy"]], color="red", zorder=3,
                 label=f"threshold {chosen['threshold']:.3f}")  # fmt: skip
    left.set_xlabel(across.replace("_", " "))
    left.set_ylabel("in-scope accuracy")
    left.legend()
    thresholds = [p["threshold"] for p in curve]
    for key in ("in_scope_accuracy", "oos_recall", "rejection_rate"):
        values = [p[key] for p in curve]
        if all(v is not None for v in values):
            right.plot(thresholds, values, label=key.replace("_", " "))
    right.axvline(chosen["threshold"], color="red", linestyle="--")
    right.set_xlabel("confidence threshold")
    right.legend()
    fig.suptitle(f"out-of-scope trade-off ({title}, {report['n_oos']} out-of-scope rows)")
    fig.tight_layout()
    path = out_dir / "oos_tradeoff.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
