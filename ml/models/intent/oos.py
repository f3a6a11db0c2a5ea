"""Choosing the out-of-scope confidence threshold on validation data.

A prediction whose top-class confidence is below the threshold is answered with
``out_of_scope`` instead of its label: we *reject* it. We define the precision of rejecting
as the share of rejected utterances for which rejecting was right: the utterance is truly
out-of-scope, or the classifier's label would have been wrong anyway (so routing it to the
out-of-scope answer loses nothing). This definition works whether or not the data holds
out-of-scope examples (the Bitext data has none). The threshold is the largest one whose
rejection precision on validation is at least the target, i.e. we reject as much as possible
while at most ``1 - target`` of the rejected ones would have been answered correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def rejection_is_right(
    y_true: Sequence[str], raw_pred: Sequence[str], oos_label: str
) -> np.ndarray:
    """Per example: would rejecting it be right (truly OOS, or the label was wrong anyway)?"""
    return np.array(
        [t == oos_label or t != p for t, p in zip(y_true, raw_pred, strict=True)], dtype=bool
    )


def choose_threshold(
    confidence: np.ndarray,
    y_true: Sequence[str],
    raw_pred: Sequence[str],
    *,
    target_precision: float,
    oos_label: str,
) -> dict[str, Any]:
    """The largest threshold whose rejection precision is >= target (0.0 = never reject).

    Returns the threshold and what it does on this data (rejection rate, precision).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    right = rejection_is_right(y_true, raw_pred, oos_label)
    order = np.argsort(conf, kind="stable")
    conf_sorted, right_sorted = conf[order], right[order]
    cum_precision = np.cumsum(right_sorted) / np.arange(1, len(conf) + 1)
    best_k = 0
    for k in range(1, len(conf) + 1):
        # Rejecting the k least confident must be expressible as "conf < t": no tie across k.
        if k < len(conf) and conf_sorted[k - 1] == conf_sorted[k]:
            continue
        if cum_precision[k - 1] >= target_precision:
            best_k = k
    if best_k == 0:
        threshold = 0.0
    elif best_k == len(conf):
        threshold = float(np.nextafter(conf_sorted[-1], np.inf))
    else:
        threshold = float((conf_sorted[best_k - 1] + conf_sorted[best_k]) / 2)
    return {
        "threshold": threshold,
        "target_precision": target_precision,
        "rejected": int(best_k),
        "rejection_rate": best_k / max(len(conf), 1),
        "rejection_precision": float(cum_precision[best_k - 1]) if best_k else None,
    }


def oos_metrics(
    y_true: Sequence[str],
    final_pred: Sequence[str],
    raw_pred: Sequence[str],
    confidence: np.ndarray,
    threshold: float,
    oos_label: str,
) -> dict[str, float | None]:
    """How the threshold behaves on (test) data.

    ``oos_precision``/``oos_recall``/``oos_f1`` treat "final label is out_of_scope" as the
    detector of truly out-of-scope utterances (None when the data has none);
    ``rejection_*`` use the definition in this module's docstring; ``accepted_accuracy`` is
    the accuracy on utterances that were not rejected.
    """
    t = np.asarray(y_true, dtype=object)
    f = np.asarray(final_pred, dtype=object)
    rejected = np.asarray(confidence) < threshold
    right = rejection_is_right(y_true, raw_pred, oos_label)
    out: dict[str, float | None] = {
        "rejection_rate": float(rejected.mean()) if len(t) else 0.0,
        "rejection_precision": float(right[rejected].mean()) if rejected.any() else None,
        "accepted_accuracy": float((t[~rejected] == f[~rejected]).mean())
        if (~rejected).any()
        else None,
        "oos_precision": None,
        "oos_recall": None,
        "oos_f1": None,
    }
    is_oos, said_oos = t == oos_label, f == oos_label
    if is_oos.any():
        tp = float((is_oos & said_oos).sum())
        precision = tp / said_oos.sum() if said_oos.any() else 0.0
        recall = tp / is_oos.sum()
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.update(oos_precision=precision, oos_recall=recall, oos_f1=f1)
    return out
