"""Every metric the project reports, defined once.

Evaluation, the offline A/B gate, drift and the benchmarks all call these functions, so a number
means the same thing wherever it is shown.

Row weights: each per-row metric takes an optional ``weights`` array, either ``(n,)`` or a
``(B, n)`` matrix of bootstrap resample counts. Without weights (or with 1-D weights) the result
is a float; with a matrix it is one value per row of the matrix. The gate's paired bootstrap is
therefore the same arithmetic as the point estimate in ``metrics.json``, not a second copy.

Classification
    ``accuracy`` and ``macro_f1`` compare a label with a prediction. Macro-F1 averages over the
    classes present in the labels or the predictions of the (weighted) rows, as scikit-learn does.
    ``expected_calibration_error`` (ECE) uses :data:`ECE_BINS` equal-width bins, right-closed
    (``(m-1)/M < confidence <= m/M``; a confidence of 0 falls in the first bin), and
    :data:`CALIBRATION_CORRECT` says what counts as correct for it.

Ranking (one held-out target per user, full-catalogue ranking)
    :func:`rank_targets` gives each target's 1-based rank among all items minus the user's
    history, ties at their expected rank; ``recall@k``, ``ndcg@k`` and ``mrr`` follow from ranks.
    Coverage and popularity bias read the top-N lists.

Online agreement (shadow traffic: the champion answers, the challenger predicts the same input)
    Intent: ``accuracy`` of "the two labels are equal". Recommender: :func:`top_k_overlap`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

ECE_BINS = 15
# The top-class confidence is the probability of the argmax label, so calibration compares it
# with whether that argmax label is right (before any out-of-scope threshold is applied).
CALIBRATION_CORRECT = "argmax label == true label (before the out-of-scope threshold)"
TOP_N = 10  # list length for coverage and popularity bias
RANKING_PREFIXES = ("recall@", "ndcg@", "hit@", "precision@")


# ----------------------------------------------------------------------------- weights


def _weight_matrix(n: int, weights: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """(B, n) float weights and whether the caller wants a vector back."""
    if weights is None:
        return np.ones((1, n)), False
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        return w[None, :], False
    return w, True


def _out(values: np.ndarray, vector: bool) -> Any:
    return values if vector else float(values[0])


def weighted_mean(values: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """Mean of a per-row quantity (nan for an empty selection)."""
    v = np.asarray(values, dtype=np.float64)
    w, vector = _weight_matrix(len(v), weights)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _out(np.where(total > 0, w @ v / np.where(total > 0, total, 1), np.nan), vector)


# ----------------------------------------------------------------------------- classification


def accuracy(correct: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """Share of rows whose prediction is right."""
    return weighted_mean(np.asarray(correct, dtype=np.float64), weights)


def encode_labels(*columns: Sequence[Any]) -> tuple[list[np.ndarray], list[str]]:
    """Map label strings of several columns to shared integer codes (sorted class names)."""
    classes = sorted({str(v) for col in columns for v in col})
    index = {c: i for i, c in enumerate(classes)}
    return [np.array([index[str(v)] for v in col], dtype=np.int64) for col in columns], classes


def macro_f1(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray | None = None
) -> Any:
    """Unweighted mean F1 over the classes present in labels or predictions (integer codes)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    w, vector = _weight_matrix(len(t), weights)
    total = np.zeros(w.shape[0])
    present = np.zeros(w.shape[0])
    # One class at a time, summed in code order: a class's F1 is then computed the same way
    # whatever other classes the coding knows about, so two callers get bit-identical values.
    for c in range(n_classes):
        is_true, is_pred = (t == c).astype(np.float64), (p == c).astype(np.float64)
        denom = w @ is_true + w @ is_pred
        tp = w @ (is_true * is_pred)
        here = denom > 0
        total += np.where(here, 2 * tp / np.where(here, denom, 1), 0.0)
        present += here
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(present > 0, total / np.maximum(present, 1), np.nan)
    return _out(values, vector)


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any]) -> dict[str, float]:
    """Accuracy and macro-F1 of label sequences (strings or anything with a str())."""
    (t, p), classes = encode_labels(y_true, y_pred)
    return {
        "accuracy": accuracy(t == p),
        "macro_f1": macro_f1(t, p, max(len(classes), 1)),
    }


def confidence_bins(confidence: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin index of each confidence: equal width, right-closed, 0 goes to the first bin."""
    conf = np.asarray(confidence, dtype=np.float64)
    return np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def expected_calibration_error(
    confidence: np.ndarray,
    correct: np.ndarray,
    n_bins: int = ECE_BINS,
    weights: np.ndarray | None = None,
) -> Any:
    """ECE = sum over bins |sum(confidence) - sum(correct)| / rows (bin-weighted |acc - conf|)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    w, vector = _weight_matrix(len(conf), weights)
    bin_hot = np.eye(n_bins)[confidence_bins(conf, n_bins)]
    gap = w @ (bin_hot * (conf - hit)[:, None])
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(total > 0, np.abs(gap).sum(axis=1) / np.where(total > 0, total, 1), 0.0)
    return _out(values, vector)


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS
) -> pd.DataFrame:
    """Per bin (the ECE's bins): edges, count, mean confidence, accuracy."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    which = confidence_bins(conf, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
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


# ----------------------------------------------------------------------------- ranking


def rank_targets(
    scores: np.ndarray,
    targets: np.ndarray,
    histories: Sequence[Sequence[int]],
    top_n: int = TOP_N,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each target's 1-based rank among all items minus the user's history (ties at their
    expected rank; a target already in the history gets inf), the number of candidates, and
    each user's top-``top_n`` items (history excluded)."""
    s = np.array(scores, dtype=np.float64, copy=True)
    n_users, n_items = s.shape
    targets = np.asarray(targets, dtype=np.int64)
    n_candidates = np.empty(n_users, dtype=np.int64)
    owned = np.zeros(n_users, dtype=bool)
    for row, hist in enumerate(histories):
        seen = np.unique(np.asarray(hist, dtype=np.int64))
        s[row, seen] = -np.inf
        n_candidates[row] = n_items - seen.size
        owned[row] = bool(np.isin(targets[row], seen))
    t = s[np.arange(n_users), targets][:, None]
    greater = (s > t).sum(axis=1)
    ties = (s == t).sum(axis=1) - 1
    ranks = np.where(owned, np.inf, 1.0 + greater + ties / 2.0)
    top_n = min(top_n, n_items)
    if top_n <= 0 or n_users == 0:
        return ranks, n_candidates, np.zeros((n_users, 0), dtype=np.int64)
    part = np.argpartition(-s, top_n - 1, axis=1)[:, :top_n]
    # Stable order: score descending, then item index (so equal scores list the same way).
    part_scores = np.take_along_axis(s, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return ranks, n_candidates, np.take_along_axis(part, order, axis=1)


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = (10, 20)) -> pd.DataFrame:
    """Per-user ``rank``, ``recall@k`` and ``ndcg@k`` for every k, and ``mrr`` (untruncated).

    With one relevant item, recall@k is a hit indicator and ndcg@k = 1/log2(rank + 1).
    """
    r = np.asarray(ranks, dtype=np.float64)
    if np.any(r < 1):
        raise ValueError("ranks are 1-based: every rank must be >= 1 (or inf)")
    out: dict[str, np.ndarray] = {"rank": r}
    with np.errstate(divide="ignore"):
        for k in ks:
            hit = r <= k
            out[f"recall@{k}"] = hit.astype(np.float64)
            out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(r + 1.0), 0.0)
        out["mrr"] = np.where(np.isfinite(r), 1.0 / r, 0.0)
    return pd.DataFrame(out)


def is_ranking_metric(name: str) -> bool:
    return name.startswith(RANKING_PREFIXES) or name == "mrr"


def summarize(per_user: pd.DataFrame) -> dict[str, float]:
    """Means of the per-user ranking metric columns."""
    cols = [c for c in per_user.columns if is_ranking_metric(c)]
    return {c: weighted_mean(per_user[c].to_numpy()) for c in cols}


def rank_percentile(ranks: np.ndarray, n_candidates: np.ndarray) -> float:
    """Mean of rank / candidates (lower is better; a random ranking gives about 0.5)."""
    r = np.asarray(ranks, dtype=np.float64)
    finite = np.isfinite(r)
    if not finite.any():
        return float("nan")
    return float(np.mean(r[finite] / np.maximum(np.asarray(n_candidates)[finite], 1)))


def catalog_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top list."""
    if n_items == 0:
        return 0.0
    return float(np.unique(np.asarray(top_items).ravel()).size / n_items)


def popularity_bias(top_items: np.ndarray, item_counts: np.ndarray) -> float:
    """Mean popularity percentile (0..1) of recommended items.

    0.5 ~ recommending catalogue items uniformly, 1.0 = only the single most popular item.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.size == 0 or np.asarray(top_items).size == 0:
        return float("nan")
    # Average-rank percentile so that items with equal counts share one value.
    pct = pd.Series(counts).rank(method="average", pct=True).to_numpy()
    return float(pct[np.asarray(top_items).ravel()].mean())


def average_recommended_popularity(top_items: np.ndarray, item_counts: np.ndarray) -> float:
    """Mean training count of the recommended items (ARP)."""
    return float(np.asarray(item_counts, dtype=np.float64)[np.asarray(top_items).ravel()].mean())


# ----------------------------------------------------------------------------- distribution shift


def distribution(values: pd.Series) -> pd.Series:
    counts = values.astype(str).value_counts()
    return counts / counts.sum()


def total_variation(p: pd.Series, q: pd.Series) -> float:
    """Half the L1 distance between two categorical distributions (0 = same, 1 = disjoint)."""
    keys = p.index.union(q.index)
    return float(0.5 * np.abs(p.reindex(keys, fill_value=0) - q.reindex(keys, fill_value=0)).sum())


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Largest gap between the two empirical CDFs (two-sample Kolmogorov-Smirnov statistic)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def centroid_cosine_distance(ref: np.ndarray, cur: np.ndarray) -> float:
    """1 - cosine similarity of the mean embeddings: how far the typical utterance moved."""
    a, b = ref.mean(axis=0), cur.mean(axis=0)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if denom == 0 else float(1.0 - np.dot(a, b) / denom)


# ----------------------------------------------------------------------------- online agreement


def top_k_overlap(a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]]) -> np.ndarray:
    """Per pair of top-k lists: the items they share over the longer list's length (1 = the same
    items in any order, 0 = disjoint; two empty lists agree)."""
    out = np.ones(len(a), dtype=np.float64)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        longer = max(len(x), len(y))
        if longer:
            out[i] = len(set(x) & set(y)) / longer
    return out
