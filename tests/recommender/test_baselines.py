"""The baselines on hand-checkable inputs."""

from __future__ import annotations

import numpy as np

from ml.models.recommender.baselines import (
    CoOccurrence,
    MostPopular,
    TextSimilarity,
    cooccurrence_counts,
    transition_counts,
)


def test_most_popular_same_for_everyone() -> None:
    s = MostPopular(np.array([3.0, 1.0, 2.0])).score([[0], []])
    assert s.shape == (2, 3)
    assert s[0].tolist() == s[1].tolist() == [3.0, 1.0, 2.0]


def test_co_occurrence_follows_last_item_then_popularity() -> None:
    seqs = [[0, 1, 2], [0, 1], [3, 2], [2, 2, 2]]
    sc = CoOccurrence(seqs, 4)
    after0 = sc.score([[2, 0]])[0]  # last item 0 -> 1 seen twice
    assert int(np.argmax(after0)) == 1
    after1 = sc.score([[1]])[0]  # 1 -> 2 once; ties broken by popularity back-off only
    assert int(np.argmax(after1)) == 2
    empty = sc.score([[]])[0]  # no history: popularity order
    assert int(np.argmax(empty)) == 2
    assert np.all(empty < 1.0)  # back-off never outweighs one transition


def test_cooccurrence_counts_by_gap_and_direction() -> None:
    seqs = [[0, 1, 2], [1, 2]]
    # Defaults: next-item counts, the co-occurrence baseline's.
    assert np.array_equal(
        cooccurrence_counts(seqs, 3).toarray(), transition_counts(seqs, 3).toarray()
    )
    assert transition_counts(seqs, 3).toarray().tolist() == [[0, 1, 0], [0, 0, 2], [0, 0, 0]]
    counts = cooccurrence_counts(seqs, 3, window=2, reverse_weight=0.25).toarray()
    expected = [
        [0.0, 1.0, 0.5],  # 0 -> 1 next, 0 -> 2 two steps later (half)
        [0.25, 0.0, 2.0],  # 1 after 0 (reverse), 1 -> 2 twice
        [0.125, 0.5, 0.0],  # 2 two steps after 0 (half, reverse), 2 after 1 twice (reverse)
    ]
    assert np.allclose(counts, expected)
    # A window longer than every sequence adds nothing beyond the longest gap.
    assert np.allclose(
        cooccurrence_counts(seqs, 3, window=9, reverse_weight=0.25).toarray(), expected
    )


def test_text_similarity_prefers_similar_items() -> None:
    v = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    s = TextSimilarity(v).score([[0], []])
    assert s[0, 1] > s[0, 2]
    assert np.all(s[1] == 0)
