"""Ranking metrics from the 1-based rank of each user's held-out item (full-catalog ranking).

A rank is ``np.inf`` when the target cannot be ranked (e.g. it was excluded as already owned).
Ties are scored at their expected rank under random tie-breaking, so a constant scorer is not
rewarded for luck of index order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = (10, 20)) -> pd.DataFrame:
    """Per-user metrics: ``recall@k`` and ``ndcg@k`` for every k, and ``mrr`` (untruncated).

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


def summarize(per_user: pd.DataFrame) -> dict[str, float]:
    """Means of the metric columns (everything except rank and identifiers)."""
    cols = [c for c in per_user.columns if c.startswith(("recall@", "ndcg@")) or c == "mrr"]
    return {c: float(per_user[c].mean()) if len(per_user) else float("nan") for c in cols}


def ranks_from_scores(
    scores: np.ndarray, targets: np.ndarray, exclude: Sequence[Sequence[int]]
) -> np.ndarray:
    """Rank of each target among all items, after removing the user's ``exclude`` items.

    ``scores`` is (users, items). A target that is itself excluded gets ``inf``.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    ranks = np.empty(len(targets), dtype=np.float64)
    for row, (target, seen) in enumerate(zip(targets, exclude, strict=True)):
        seen_idx = np.fromiter((int(i) for i in seen), dtype=np.int64)
        if int(target) in set(seen_idx.tolist()):
            ranks[row] = np.inf
            continue
        s = scores[row]
        s[seen_idx] = -np.inf
        t = s[int(target)]
        greater = np.count_nonzero(s > t)
        ties = np.count_nonzero(s == t) - 1
        ranks[row] = 1.0 + greater + ties / 2.0
    return ranks


def catalog_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one user's top list."""
    if n_items == 0:
        return 0.0
    return float(np.unique(np.asarray(top_items).ravel()).size / n_items)


def popularity_bias(top_items: np.ndarray, item_counts: np.ndarray) -> float:
    """Mean popularity percentile (0..1) of recommended items.

    0.5 ~ recommending catalog items uniformly, 1.0 = only the single most popular item.
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
