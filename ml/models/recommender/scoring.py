"""Scoring a recommender on the frozen test split: the one path for every caller.

``evaluate recommender`` (the challenger), the gate (challenger and champion, both loaded from
the registry) and the benchmarks call :func:`score_recommender_model`: full-catalogue ranking of
each test user's held-out item, history excluded, ties at their expected rank
(:func:`ml.core.metrics.rank_targets`), so MRR, NDCG and coverage mean the same on both sides.

The catalogue is the test data's (``items.parquet``). Items the model was not trained on (a
champion meeting items launched since) are added from their text with the model's own text
encoder, as they would be when serving, so every target can be ranked by either model.

The frame has one row per test user, sorted by ``user_idx``::

    user_idx, target, rank, recall@k / ndcg@k for each k, mrr, n_candidates, top (top-10
    item_idx), cold_start, history_len, short_history, category, user_cluster
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core import metrics as m
from ml.core.errors import InputError

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.models.recommender.data import RecData
    from ml.models.recommender.model import Recommender

TOP_COLUMN = "top"


def as_recommender(model: Any) -> Recommender | None:
    """The :class:`Recommender` inside a loaded pyfunc (or the object itself); None for another
    implementation of the contract."""
    from ml.models.recommender.model import Recommender

    if isinstance(model, Recommender):
        return model
    inner = unwrap(model)
    rec = getattr(inner, "model", None)
    return rec if isinstance(rec, Recommender) else None


def unwrap(model: Any) -> Any:
    """The python model inside a loaded pyfunc (``PyFuncModel.unwrap_python_model()``)."""
    unwrap_fn = getattr(model, "unwrap_python_model", None)
    return unwrap_fn() if unwrap_fn else model


def aligned_to_catalog(model: Any, items: pd.DataFrame) -> tuple[Recommender, np.ndarray, int]:
    """A recommender that can rank every item of ``items`` and the column of each item in its
    score matrix; unknown items are added (on a copy) from their text. Also returns how many
    items were added."""
    from ml.models.recommender.features import item_texts

    rec = as_recommender(model)
    if rec is None:
        raise InputError(f"{type(model).__name__} is not a shopflow recommender model")
    ids = items["item_id"].astype(str).tolist()
    known = set(rec.item_ids)
    new = [i for i, item_id in enumerate(ids) if item_id not in known]
    if new:
        from ml.models.encoders import encode_texts

        rec = copy.deepcopy(rec)
        vectors = encode_texts(
            item_texts(items.iloc[new]),
            rec.config.get("text_model_path"),
            show_progress=False,
        )
        rec.add_items([ids[i] for i in new], vectors)
    index = {item_id: i for i, item_id in enumerate(rec.item_ids)}
    return rec, np.array([index[i] for i in ids], dtype=np.int64), len(new)


class CatalogScorer:
    """``score_items`` of the registered-recommender contract (ml/core/schemas.py) for a
    :class:`Recommender`: dense scores over a given catalogue, items it was not trained on
    scored from their text. The alignment is computed once per catalogue."""

    def __init__(self, model: Recommender) -> None:
        self.model = model
        self._aligned: tuple[tuple[str, ...], Recommender, np.ndarray] | None = None

    def aligned(self, items: pd.DataFrame) -> tuple[Recommender, np.ndarray]:
        key = tuple(items["item_id"].astype(str))
        if self._aligned is None or self._aligned[0] != key:
            rec, columns, _ = aligned_to_catalog(self.model, items)
            self._aligned = (key, rec, columns)
        return self._aligned[1], self._aligned[2]

    def score_items(self, histories: Sequence[Sequence[str]], items: pd.DataFrame) -> np.ndarray:
        rec, columns = self.aligned(items)
        own = [rec.to_indices([str(i) for i in h]) for h in histories]
        return rec.score(own)[:, columns]


def catalog_scorer(model: Any) -> Any:
    """Something with ``score_items(histories, items)`` for a loaded recommender."""
    rec = as_recommender(model)
    if rec is not None:
        return CatalogScorer(rec)
    inner = unwrap(model)
    if not callable(getattr(inner, "score_items", None)):
        raise InputError(
            f"{type(inner).__name__} has no score_items(histories, items): a registered "
            "recommender must rank the whole catalogue (see RECOMMENDER_SCORE_ITEMS in "
            "ml/core/schemas.py) so both sides of the gate are measured alike"
        )
    return inner


class _ItemIdScorer:
    """Adapts ``score_items`` (item-id histories) to the Scorer protocol (item_idx histories)."""

    name = "model"

    def __init__(self, scorer: Any, items: pd.DataFrame) -> None:
        self.scorer, self.items = scorer, items
        self.ids = items["item_id"].astype(str).to_numpy()

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        id_histories = [[str(self.ids[i]) for i in h] for h in histories]
        return np.asarray(self.scorer.score_items(id_histories, self.items), dtype=np.float64)


def rank_split(
    scorer: Any,
    histories: Sequence[Sequence[int]],
    targets: np.ndarray,
    batch_size: int = 512,
    top_n: int = m.TOP_N,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks, candidate counts and top-n lists in the catalogue's item_idx space, one dense
    score block of ``batch_size`` users at a time (``scorer.score(histories)`` gives (batch,
    items) scores)."""
    from ml.core.progress import progress

    name = getattr(scorer, "name", "model")
    parts = []
    for start in progress(
        range(0, len(targets), batch_size), desc=f"ranking {name}", unit="batch", leave=False
    ):
        batch = histories[start : start + batch_size]
        scores = scorer.score(batch)
        parts.append(m.rank_targets(scores, targets[start : start + batch_size], batch, top_n))
    if not parts:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, top_n), dtype=np.int64)
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


def score_recommender_model(
    model: Any,
    data: RecData,
    *,
    split: str = "test",
    ks: Sequence[int] = (10, 20),
    short_history_max: int = 3,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Per-user frame of ``model`` (a loaded pyfunc or a Recommender) on ``data``'s split."""
    from ml.models.recommender.features import assign_clusters

    frame = data.split(split)
    histories = [[int(i) for i in h] for h in frame["history"]]
    targets = frame["target"].to_numpy(dtype=np.int64)
    scorer = _ItemIdScorer(catalog_scorer(model), data.items)
    ranks, n_cand, top = rank_split(scorer, histories, targets, batch_size)
    per_user = m.metrics_from_ranks(ranks, ks)
    per_user.insert(0, "target", targets)
    per_user.insert(0, "user_idx", frame["user_idx"].to_numpy())
    per_user["n_candidates"] = n_cand
    per_user[TOP_COLUMN] = list(top)
    seen = data.train_counts() > 0
    hist_len = np.array([len(h) for h in histories], dtype=np.int64)
    per_user["cold_start"] = ~seen[targets]
    per_user["history_len"] = hist_len
    per_user["short_history"] = hist_len <= short_history_max
    if "category" in data.items:
        per_user["category"] = data.items["category"].astype(str).to_numpy()[targets]
    rec = as_recommender(model)
    if rec is not None:  # the model's own user clusters (a slice of evaluate's report)
        ids = data.items["item_id"].astype(str).to_numpy()
        own = [rec.to_indices([str(ids[i]) for i in h]) for h in histories]
        per_user["user_cluster"] = assign_clusters(own, rec.text_vectors, rec.centroids)
    return per_user.sort_values("user_idx", kind="stable").reset_index(drop=True)


def frame_metrics(
    per_user: pd.DataFrame, n_items: int, item_counts: np.ndarray
) -> dict[str, float]:
    """The headline numbers of a scored frame, as metrics.json and the gate report them."""
    out = m.summarize(per_user)
    top = np.stack(per_user[TOP_COLUMN].to_numpy()) if len(per_user) else np.zeros((0, m.TOP_N))
    width = top.shape[1]
    out[f"coverage@{width}"] = m.catalog_coverage(top, n_items)
    out[f"popularity_bias@{width}"] = m.popularity_bias(top, item_counts)
    out[f"avg_rec_popularity@{width}"] = m.average_recommended_popularity(top, item_counts)
    out["rank_percentile"] = m.rank_percentile(
        per_user["rank"].to_numpy(), per_user["n_candidates"].to_numpy()
    )
    return out


def load_frozen_test(params: Params) -> RecData:
    """The processed recsys data under ``paths.processed`` (its test split is the frozen one)."""
    from ml.models.recommender.data import load_recsys

    return load_recsys(params.paths.processed)


def score_frozen_test(model: Any, test: RecData, params: Params) -> pd.DataFrame:
    cfg = params.recommender.eval
    return score_recommender_model(
        model,
        test,
        ks=cfg.ks,
        short_history_max=cfg.short_history_max,
        batch_size=cfg.batch_size,
    )
