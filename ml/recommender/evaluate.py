"""Honest offline evaluation: full-catalog ranking on the leave-last-out test split.

Every scorer (the model and the baselines) ranks *all* items for each user, minus the items
already in the user's history; no sampled negatives. Writes the DVC metrics file and the
per-user table the offline A/B gate pairs between champion and challenger.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ml.errors import InputError
from ml.recommender.baselines import CoOccurrence, MostPopular, Scorer, TextSimilarity
from ml.recommender.data import RecData, load_recsys
from ml.recommender.features import assign_clusters
from ml.recommender.metrics import (
    average_recommended_popularity,
    catalog_coverage,
    metrics_from_ranks,
    popularity_bias,
    summarize,
)

if TYPE_CHECKING:
    from ml.config import Params

log = logging.getLogger(__name__)

PER_USER_FILE = "per_user.parquet"
METRICS_FILE = "metrics.json"
TOP_N = 10  # list length for coverage and popularity bias


def rank_and_top(
    scores: np.ndarray, targets: np.ndarray, histories: Sequence[Sequence[int]], top_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of targets (history excluded; expected rank under ties), candidate counts, and
    each user's top-n list. A target already in the history gets rank inf."""
    s = np.array(scores, dtype=np.float64, copy=True)
    n_users, n_items = s.shape
    n_candidates = np.empty(n_users, dtype=np.int64)
    owned = np.zeros(n_users, dtype=bool)
    for row, hist in enumerate(histories):
        seen = np.unique(np.asarray(hist, dtype=np.int64))
        s[row, seen] = -np.inf
        n_candidates[row] = n_items - seen.size
        owned[row] = int(targets[row]) in set(seen.tolist())
    t = s[np.arange(n_users), targets][:, None]
    greater = (s > t).sum(axis=1)
    ties = (s == t).sum(axis=1) - 1
    ranks = np.where(owned, np.inf, 1.0 + greater + ties / 2.0)
    top_n = min(top_n, n_items)
    part = np.argpartition(-s, top_n - 1, axis=1)[:, :top_n]
    order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
    return ranks, n_candidates, np.take_along_axis(part, order, axis=1)


def rank_split(
    scorer: Scorer,
    histories: Sequence[Sequence[int]],
    targets: np.ndarray,
    *,
    batch_size: int = 512,
    top_n: int = TOP_N,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`rank_and_top` over a whole split, in batches (one dense score block at a time)."""
    parts = []
    for start in tqdm(
        range(0, len(targets), batch_size), desc=f"ranking {scorer.name}", unit="batch", leave=False
    ):
        batch = histories[start : start + batch_size]
        parts.append(
            rank_and_top(scorer.score(batch), targets[start : start + batch_size], batch, top_n)
        )
    if not parts:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, top_n), dtype=np.int64)
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def scorer_summary(
    ranks: np.ndarray,
    n_candidates: np.ndarray,
    top: np.ndarray,
    counts: np.ndarray,
    ks: Sequence[int],
) -> dict[str, float]:
    out = summarize(metrics_from_ranks(ranks, ks))
    out[f"coverage@{top.shape[1]}"] = catalog_coverage(top, len(counts))
    out[f"popularity_bias@{top.shape[1]}"] = popularity_bias(top, counts)
    out[f"avg_rec_popularity@{top.shape[1]}"] = average_recommended_popularity(top, counts)
    out["rank_percentile"] = _rank_percentile(ranks, n_candidates)
    return out


def _rank_percentile(ranks: np.ndarray, n_candidates: np.ndarray) -> float:
    """Mean of rank / candidates (lower is better; a random ranking gives about 0.5)."""
    finite = np.isfinite(ranks)
    if not finite.any():
        return float("nan")
    return float(np.mean(ranks[finite] / np.maximum(n_candidates[finite], 1)))


def slice_table(
    data: RecData, split: pd.DataFrame, cluster_of_user: np.ndarray, short_history_max: int
) -> pd.DataFrame:
    """Slice columns per user: cold-start target, history length, target category, cluster."""
    seen = data.train_counts() > 0
    targets = split["target"].to_numpy(dtype=np.int64)
    hist_len = split["history"].map(len).to_numpy()
    return pd.DataFrame(
        {
            "cold_start": ~seen[targets],
            "history_len": hist_len,
            "short_history": hist_len <= short_history_max,
            "category": data.items["category"].astype(str).to_numpy()[targets],
            "user_cluster": cluster_of_user,
        }
    )


def slice_metrics(
    per_user: pd.DataFrame, n_candidates: np.ndarray, columns: Sequence[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in columns:
        out[col] = {}
        for value, group in per_user.groupby(col, sort=True):
            stats = summarize(group)
            stats["rank_percentile"] = _rank_percentile(
                group["rank"].to_numpy(), n_candidates[group.index.to_numpy()]
            )
            stats["n_users"] = len(group)
            out[col][str(value).lower() if isinstance(value, bool | np.bool_) else str(value)] = (
                stats
            )
    return out


def evaluate_scorers(
    data: RecData,
    model: Any,
    *,
    split: str = "test",
    ks: Sequence[int] = (10, 20),
    short_history_max: int = 3,
    batch_size: int = 512,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """Rank the split with the model and the three baselines.

    Returns the model's per-user table, the metrics dict, every scorer's ranks (for plots) and
    the model's top-10 lists.
    """
    frame = data.split(split)
    histories = [[int(i) for i in h] for h in frame["history"]]
    targets = frame["target"].to_numpy(dtype=np.int64)
    counts = data.train_counts()
    sequences = [list(s) for s in data.train["items"]]
    baselines: list[Scorer] = [
        MostPopular(counts),
        CoOccurrence(sequences, data.n_items),
        TextSimilarity(model.text_vectors[: data.n_items]),
    ]
    results: dict[str, dict[str, float]] = {}
    all_ranks: dict[str, np.ndarray] = {}
    model_out = None
    for scorer in [model, *baselines]:
        ranks, n_cand, top = rank_split(scorer, histories, targets, batch_size=batch_size)
        name = "model" if scorer is model else scorer.name
        results[name] = scorer_summary(ranks, n_cand, top, counts, ks)
        all_ranks[name] = ranks
        if scorer is model:
            model_out = (ranks, n_cand, top)
    assert model_out is not None
    ranks, n_cand, model_top = model_out
    clusters = assign_clusters(histories, model.text_vectors, model.centroids)
    per_user = metrics_from_ranks(ranks, ks)
    per_user.insert(0, "target", targets)
    per_user.insert(0, "user_idx", frame["user_idx"].to_numpy())
    slices = slice_table(data, frame, clusters, short_history_max)
    per_user = pd.concat([per_user, slices], axis=1)
    best_name = max((n for n in results if n != "model"), key=lambda n: results[n]["ndcg@10"])
    metrics: dict[str, Any] = {
        "split": split,
        "n_users": len(targets),
        "n_items": data.n_items,
        "model": results["model"],
        "baselines": {n: v for n, v in results.items() if n != "model"},
        "margin": {
            "best_baseline": best_name,
            "ndcg@10_vs_best_baseline": results["model"]["ndcg@10"] - results[best_name]["ndcg@10"],
            "ndcg@10_vs_most_popular": results["model"]["ndcg@10"]
            - results["most_popular"]["ndcg@10"],
        },
        "slices": slice_metrics(
            per_user, n_cand, ["cold_start", "short_history", "category", "user_cluster"]
        ),
    }
    return per_user, metrics, all_ranks, model_top


def write_plots(
    all_ranks: dict[str, np.ndarray], model_top: np.ndarray, counts: np.ndarray, folder: Path
) -> list[Path]:
    """Recall/NDCG vs K per scorer, and the popularity of recommended vs catalog items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    ks = np.arange(1, 51)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    with np.errstate(divide="ignore"):
        for name, ranks in all_ranks.items():
            axes[0].plot(ks, [(ranks <= k).mean() for k in ks], label=name)
            ndcg = [np.where(ranks <= k, 1 / np.log2(ranks + 1), 0).mean() for k in ks]
            axes[1].plot(ks, ndcg, label=name)
    axes[0].set(xlabel="K", ylabel="Recall@K", title="Recall vs K")
    axes[1].set(xlabel="K", ylabel="NDCG@K", title="NDCG vs K")
    axes[0].legend()
    fig.tight_layout()
    paths = [folder / "metric_vs_k.png", folder / "popularity_bias.png"]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    pct = pd.Series(counts).rank(method="average", pct=True).to_numpy()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(pct, bins=20, alpha=0.5, density=True, label="catalog")
    ax.hist(pct[model_top.ravel()], bins=20, alpha=0.5, density=True, label="model top-10")
    ax.set(xlabel="item popularity percentile (train)", ylabel="density", title="Popularity bias")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def evaluate_recommender(
    params: Params,
    processed_dir: str | Path,
    model_dir: str | Path,
    reports_dir: str | Path,
    *,
    split: str = "test",
) -> dict[str, Any]:
    """Evaluate the model folder against the baselines; write metrics.json, per_user.parquet
    and plots under ``reports_dir`` (``<reports>/recommender``). Returns the metrics dict."""
    from ml.recommender.model import Recommender

    cfg = params.recommender.eval
    data = load_recsys(processed_dir)
    model = Recommender.load(model_dir)
    if model.n_items != data.n_items:
        raise InputError(
            f"{model_dir}: model knows {model.n_items} items but {processed_dir} has "
            f"{data.n_items}: retrain on this data"
        )
    per_user, metrics, all_ranks, model_top = evaluate_scorers(
        data,
        model,
        split=split,
        ks=cfg.ks,
        short_history_max=cfg.short_history_max,
        batch_size=cfg.batch_size,
    )
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    per_user.to_parquet(reports_dir / PER_USER_FILE, index=False)
    (reports_dir / METRICS_FILE).write_text(
        json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8"
    )
    plots = write_plots(all_ranks, model_top, data.train_counts(), reports_dir / "plots")
    metrics["files"] = {
        "metrics": str(reports_dir / METRICS_FILE),
        "per_user": str(reports_dir / PER_USER_FILE),
        "plots": [str(p) for p in plots],
    }
    return metrics
