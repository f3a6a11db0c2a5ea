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


# ----------------------------------------------------------------------------- operating point
#
# The trade-off a shop chooses on: per threshold t, with "rejected" meaning answered out_of_scope
# (confidence < t, or the model's own out_of_scope label):
#   in_scope_accuracy  share of in-scope utterances answered with their right label
#   oos_recall         share of truly out-of-scope utterances answered out_of_scope
#   rejection_rate     share of all utterances answered out_of_scope
# The gate's "label=out_of_scope" slice accuracy is oos_recall at the chosen threshold, and its
# accuracy on the other labels is in_scope_accuracy: one definition in both places.

POLICIES = ("rejection_precision", "oos_recall", "max_in_scope_loss", "cost")


def tradeoff_curve(
    confidence: np.ndarray,
    y_true: Sequence[str],
    raw_pred: Sequence[str],
    *,
    oos_label: str,
    thresholds: Sequence[float] | None = None,
) -> list[dict[str, float | None]]:
    """In-scope accuracy, out-of-scope recall and rejection rate at each threshold (by default
    0, every midpoint between distinct confidences, and just above the largest)."""
    conf = np.asarray(confidence, dtype=np.float64)
    truth = np.asarray(y_true, dtype=object)
    raw = np.asarray(raw_pred, dtype=object)
    if thresholds is None:
        distinct = np.unique(conf)
        middles = (distinct[:-1] + distinct[1:]) / 2 if distinct.size > 1 else np.zeros(0)
        top = [float(np.nextafter(distinct[-1], np.inf))] if distinct.size else []
        thresholds = [0.0, *middles.tolist(), *top]
    is_oos = truth == oos_label
    curve: list[dict[str, float | None]] = []
    for t in thresholds:
        said_oos = (conf < t) | (raw == oos_label)
        right = ~said_oos & (raw == truth)
        curve.append(
            {
                "threshold": float(t),
                "in_scope_accuracy": float(right[~is_oos].mean()) if (~is_oos).any() else None,
                "oos_recall": float(said_oos[is_oos].mean()) if is_oos.any() else None,
                "rejection_rate": float(said_oos.mean()) if len(conf) else 0.0,
            }
        )
    return curve


def choose_operating_point(
    confidence: np.ndarray,
    y_true: Sequence[str],
    raw_pred: Sequence[str],
    *,
    policy: str,
    oos_label: str,
    target_precision: float = 0.95,
    target_recall: float = 0.8,
    max_in_scope_loss: float = 0.01,
    cost_ratio: float = 1.0,
    min_oos_rows: int = 30,
) -> dict[str, Any]:
    """The threshold ``policy`` picks on (validation) data, with what it does there.

    - ``rejection_precision``: :func:`choose_threshold` (works without out-of-scope rows).
    - ``oos_recall``: the smallest threshold catching ``target_recall`` of out-of-scope rows.
    - ``max_in_scope_loss``: the largest threshold losing at most ``max_in_scope_loss`` in-scope
      accuracy against never rejecting.
    - ``cost``: the threshold minimising ``cost_ratio`` x missed out-of-scope rows + in-scope
      rows not answered right (a missed out-of-scope answer costs ``cost_ratio`` wrong answers).

    The three last need out-of-scope rows: without any they fall back to
    ``rejection_precision``; with fewer than ``min_oos_rows`` the result carries a warning.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown out-of-scope policy {policy!r}; expected one of {POLICIES}")
    n_oos = int(sum(t == oos_label for t in y_true))
    warning = None
    if policy != "rejection_precision" and n_oos == 0:
        warning = (
            f"policy {policy} needs out-of-scope rows in validation and there are none: "
            "fell back to rejection_precision"
        )
        policy = "rejection_precision"
    elif policy != "rejection_precision" and n_oos < min_oos_rows:
        warning = (
            f"only {n_oos} out-of-scope rows in validation (fewer than {min_oos_rows}): the "
            f"{policy} threshold is a rough estimate; keep more out-of-scope rows in validation"
        )
    if policy == "rejection_precision":
        chosen = choose_threshold(
            confidence,
            y_true,
            raw_pred,
            target_precision=target_precision,
            oos_label=oos_label,
        )
        threshold = chosen["threshold"]
        point = tradeoff_curve(
            confidence, y_true, raw_pred, oos_label=oos_label, thresholds=[threshold]
        )[0]
        point["rejection_precision"] = chosen["rejection_precision"]
    else:
        curve = tradeoff_curve(confidence, y_true, raw_pred, oos_label=oos_label)
        rows = (n_oos, len(y_true) - n_oos)
        point = _pick(curve, policy, target_recall, max_in_scope_loss, cost_ratio, rows)
        threshold = float(point["threshold"] or 0.0)
    return {
        "policy": policy,
        "threshold": threshold,
        "validation": point,
        "validation_oos_rows": n_oos,
        "warning": warning,
        "target": {
            "rejection_precision": target_precision,
            "oos_recall": target_recall,
            "max_in_scope_loss": max_in_scope_loss,
            "cost": cost_ratio,
        }[policy],
    }


def _pick(
    curve: list[dict[str, float | None]],
    policy: str,
    target_recall: float,
    max_in_scope_loss: float,
    cost_ratio: float,
    rows: tuple[int, int],
) -> dict[str, float | None]:
    """The point of a (threshold-ascending) curve that a policy needing out-of-scope rows picks;
    ``rows``: (out-of-scope rows, in-scope rows)."""

    def value(point: dict[str, float | None], key: str) -> float:
        return float(point[key] or 0.0)

    if policy == "oos_recall":
        reaching = [p for p in curve if value(p, "oos_recall") >= target_recall]
        return reaching[0] if reaching else curve[-1]
    if policy == "max_in_scope_loss":
        floor = value(curve[0], "in_scope_accuracy") - max_in_scope_loss
        return [p for p in curve if value(p, "in_scope_accuracy") >= floor - 1e-12][-1]
    n_oos, n_in_scope = rows

    def cost(p: dict[str, float | None]) -> float:
        missed = (1.0 - value(p, "oos_recall")) * n_oos
        wrong = (1.0 - value(p, "in_scope_accuracy")) * n_in_scope
        return cost_ratio * missed + wrong

    return min(curve, key=cost)  # the first (lowest threshold) of equal costs


def operating_point_report(
    confidence: np.ndarray,
    y_true: Sequence[str],
    raw_pred: Sequence[str],
    *,
    threshold: float,
    oos_label: str,
    resamples: int = 1000,
    seed: int = 0,
    confidence_level: float = 0.95,
    grid_step: float = 0.02,
) -> dict[str, Any]:
    """The trade-off curve on (test) data at a grid of thresholds plus the model's own, and the
    model's point with bootstrap intervals (rows resampled) for in-scope accuracy and
    out-of-scope recall: what metrics.json reports and the diagnostics plot."""
    from ml.core import metrics as m
    from ml.core.stats import percentile_interval, resample_weights

    grid = np.round(np.arange(0.0, 1.0 + grid_step / 2, grid_step), 6).tolist()
    thresholds = sorted({*grid, float(threshold)})
    curve = tradeoff_curve(confidence, y_true, raw_pred, oos_label=oos_label, thresholds=thresholds)
    point = next(p for p in curve if p["threshold"] == float(threshold))
    conf = np.asarray(confidence, dtype=np.float64)
    truth = np.asarray(y_true, dtype=object)
    raw = np.asarray(raw_pred, dtype=object)
    said_oos = (conf < threshold) | (raw == oos_label)
    is_oos = truth == oos_label
    per_row = {
        "in_scope_accuracy": ((~said_oos & (raw == truth)).astype(float), ~is_oos),
        "oos_recall": (said_oos.astype(float), is_oos),
    }
    intervals: dict[str, Any] = {}
    for name, (values, rows) in per_row.items():
        if not rows.any():
            intervals[name] = None
            continue
        samples = np.concatenate(
            [
                m.weighted_mean(values, w * rows)
                for w in resample_weights(len(conf), resamples, seed)
            ]
        )
        low, high = percentile_interval(samples, confidence_level)
        intervals[name] = {"low": low, "high": high}
    return {
        "definitions": "in_scope_accuracy: in-scope rows answered with their label; oos_recall: "
        "out-of-scope rows answered out_of_scope; rejection_rate: all rows answered out_of_scope",
        "n_oos": int(is_oos.sum()),
        "chosen": {**point, "interval": intervals, "confidence": confidence_level},
        "curve": curve,
    }
