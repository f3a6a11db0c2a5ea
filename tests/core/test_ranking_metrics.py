"""Metric functions against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.core.metrics import (
    catalog_coverage,
    metrics_from_ranks,
    popularity_bias,
    rank_targets,
    summarize,
)


def test_metrics_from_ranks_hand_computed() -> None:
    ranks = np.array([1, 2, 5, 11, np.inf])
    m = metrics_from_ranks(ranks, ks=(10, 20))
    assert m["recall@10"].tolist() == [1, 1, 1, 0, 0]
    assert m["recall@20"].tolist() == [1, 1, 1, 1, 0]
    assert m["ndcg@10"].tolist() == pytest.approx([1.0, 1 / math.log2(3), 1 / math.log2(6), 0, 0])
    assert m["ndcg@20"][3] == pytest.approx(1 / math.log2(12))
    assert m["mrr"].tolist() == pytest.approx([1.0, 0.5, 0.2, 1 / 11, 0.0])
    s = summarize(m)
    assert s["recall@10"] == pytest.approx(0.6)
    assert s["mrr"] == pytest.approx((1 + 0.5 + 0.2 + 1 / 11) / 5)


def test_metrics_reject_zero_rank() -> None:
    with pytest.raises(ValueError, match="1-based"):
        metrics_from_ranks(np.array([0, 1]))


def test_ranks_exclude_history_and_split_ties() -> None:
    scores = np.array([[0.9, 0.5, 0.5, 0.1], [0.9, 0.5, 0.5, 0.1], [0.1, 0.2, 0.3, 0.4]])
    # user 0: item 0 owned -> target 1 ties with item 2 -> expected rank 1.5
    # user 1: target 3 is owned -> inf
    # user 2: target 0 is the worst of 4 candidates, nothing owned -> rank 4
    ranks, n_cand, top = rank_targets(scores, np.array([1, 3, 0]), [[0], [3, 3], []], top_n=2)
    assert ranks.tolist() == [1.5, np.inf, 4.0]
    assert n_cand.tolist() == [3, 3, 4]  # duplicates in a history count once
    assert 0 not in top[0] and 3 not in top[1]
    assert top[2].tolist() == [3, 2]
    # Equal scores list in item order, whatever argpartition returned.
    _, _, tied = rank_targets(np.array([[0.5, 0.5, 0.5, 0.9]]), np.array([0]), [[]], top_n=3)
    assert tied[0].tolist() == [3, 0, 1]


def test_coverage_and_popularity_bias() -> None:
    top = np.array([[0, 1], [0, 2]])
    assert catalog_coverage(top, 10) == pytest.approx(0.3)
    counts = np.array([10.0, 5.0, 1.0, 0.0])
    # percentiles: item0 1.0, item1 0.75, item2 0.5, item3 0.25
    assert popularity_bias(top, counts) == pytest.approx((1 + 0.75 + 1 + 0.5) / 4)
    assert popularity_bias(np.array([[0]]), counts) == pytest.approx(1.0)
