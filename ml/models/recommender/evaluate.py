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

from ml.core import metrics as m
from ml.core.errors import InputError
from ml.core.stats import paired_difference
from ml.models.recommender.baselines import CoOccurrence, MostPopular, Scorer, TextSimilarity
from ml.models.recommender.data import RecData, load_recsys
from ml.models.recommender.scoring import (
    TOP_COLUMN,
    aligned_to_catalog,
    frame_metrics,
    rank_split,
    score_recommender_model,
)

if TYPE_CHECKING:
    from ml.core.config import Params

log = logging.getLogger(__name__)

PER_USER_FILE = "per_user.parquet"
METRICS_FILE = "metrics.json"
SLICE_COLUMNS = ("cold_start", "short_history", "category", "user_cluster")
MARGIN_RESAMPLES = 1000


def scorer_summary(
    ranks: np.ndarray,
    n_candidates: np.ndarray,
    top: np.ndarray,
    counts: np.ndarray,
    ks: Sequence[int],
) -> dict[str, float]:
    """A baseline's headline numbers, computed exactly as the model's (frame_metrics)."""
    frame = m.metrics_from_ranks(ranks, ks)
    frame["n_candidates"] = n_candidates
    frame[TOP_COLUMN] = list(top)
    return frame_metrics(frame, len(counts), counts)


def slice_metrics(per_user: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in columns:
        out[col] = {}
        for value, group in per_user.groupby(col, sort=True):
            stats = m.summarize(group)
            stats["rank_percentile"] = m.rank_percentile(
                group["rank"].to_numpy(), group["n_candidates"].to_numpy()
            )
            stats["n_users"] = len(group)
            out[col][str(value).lower() if isinstance(value, bool | np.bool_) else str(value)] = (
                stats
            )
    return out


def ndcg_margin(
    model_ranks: np.ndarray, other_ranks: np.ndarray, k: int = 10, seed: int = 0
) -> dict[str, Any]:
    """Model NDCG@k minus another scorer's on the same users (ranks in the same user order),
    with its paired bootstrap interval over users."""
    a = m.metrics_from_ranks(model_ranks, ks=(k,))[f"ndcg@{k}"].to_numpy()
    b = m.metrics_from_ranks(other_ranks, ks=(k,))[f"ndcg@{k}"].to_numpy()
    return paired_difference(
        lambda w: m.weighted_mean(a, w),
        lambda w: m.weighted_mean(b, w),
        len(a),
        resamples=MARGIN_RESAMPLES,
        seed=seed,
    )


def evaluate_scorers(
    data: RecData,
    model: Any,
    *,
    split: str = "test",
    ks: Sequence[int] = (10, 20),
    short_history_max: int = 3,
    batch_size: int = 512,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """Rank the split with the model (:func:`score_recommender_model`, the gate's path too)
    and the three baselines.

    Returns the model's per-user table, the metrics dict, every scorer's ranks (for plots) and
    the model's top-10 lists.
    """
    frame = data.split(split)
    histories = [[int(i) for i in h] for h in frame["history"]]
    targets = frame["target"].to_numpy(dtype=np.int64)
    counts = data.train_counts()
    per_user = score_recommender_model(
        model, data, split=split, ks=ks, short_history_max=short_history_max, batch_size=batch_size
    )
    rec, columns, _ = aligned_to_catalog(model, data.items)
    sequences = [list(s) for s in data.train["items"]]
    baselines: list[Scorer] = [
        MostPopular(counts),
        CoOccurrence(sequences, data.n_items),
        TextSimilarity(rec.text_vectors[columns]),
    ]
    results: dict[str, dict[str, float]] = {"model": frame_metrics(per_user, data.n_items, counts)}
    # per_user is sorted by user_idx; the plots want the split's order like the baselines.
    order = pd.Series(np.arange(len(per_user)), index=per_user["user_idx"].to_numpy())
    all_ranks: dict[str, np.ndarray] = {
        "model": per_user["rank"].to_numpy()[order.loc[frame["user_idx"].to_numpy()].to_numpy()]
    }
    for scorer in baselines:
        ranks, n_cand, top = rank_split(scorer, histories, targets, batch_size=batch_size)
        results[scorer.name] = scorer_summary(ranks, n_cand, top, counts, ks)
        all_ranks[scorer.name] = ranks
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
            # model - baseline NDCG@10 on the same users, paired bootstrap over users
            "ndcg@10_intervals": {
                name: ndcg_margin(all_ranks["model"], all_ranks[name])
                for name in results
                if name != "model"
            },
        },
        "slices": slice_metrics(per_user, SLICE_COLUMNS),
    }
    model_top = np.stack(per_user[TOP_COLUMN].to_numpy()) if len(per_user) else np.zeros((0, 0))
    return per_user, metrics, all_ranks, model_top.astype(np.int64)


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
    """Evaluate the trained model against the baselines; write metrics.json, per_user.parquet
    and plots under ``reports_dir`` (``<reports>/recommender``). Returns the metrics dict.

    The model scored is the registered artifact that ``<model_dir>/registration.json`` names
    (what the gate and serving load), or the folder itself when nothing was registered.
    """
    from ml.models.recommender.scoring import as_recommender
    from ml.stack.model_store import load_model, scoring_source

    cfg = params.recommender.eval
    data = load_recsys(processed_dir)
    source = scoring_source(Path(model_dir))
    if Path(source).is_dir():
        from ml.models.recommender.model import Recommender

        model: Any = Recommender.load(source)
    else:
        from mlflow.exceptions import MlflowException

        from ml.stack.tracking import activate_tracking_uri

        # A registered version lives in the configured store, not in MLflow's default one.
        tracking_uri, _ = activate_tracking_uri(params.mlflow)
        try:
            model = load_model(source)
        except MlflowException as exc:
            raise InputError(
                f"cannot load recommender model {source} from {tracking_uri} "
                f"(mlflow.tracking_uri / MLFLOW_TRACKING_URI): {str(exc).strip().splitlines()[0]}"
            ) from exc
    rec = as_recommender(model)
    if rec is None:
        raise InputError(
            f"{source}: not a shopflow recommender (evaluate ranks with its baselines)"
        )
    n_items = rec.n_items
    if n_items != data.n_items:
        raise InputError(
            f"{source}: model knows {n_items} items but {processed_dir} has "
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
    metrics["scored_model"] = source
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
