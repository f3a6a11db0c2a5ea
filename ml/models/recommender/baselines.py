"""Reference scorers evaluated side by side with the model on the same full-catalog ranking.

Every scorer maps a batch of histories (lists of item_idx, oldest first) to a dense
(batch, n_items) score matrix; higher is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from scipy import sparse


class Scorer(Protocol):
    name: str

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray: ...


def transition_counts(sequences: Sequence[Sequence[int]], n_items: int) -> sparse.csr_matrix:
    """(n_items, n_items) counts of item i directly followed by item j in the sequences."""
    return cooccurrence_counts(sequences, n_items)


def cooccurrence_counts(
    sequences: Sequence[Sequence[int]],
    n_items: int,
    *,
    window: int = 1,
    reverse_weight: float = 0.0,
    gap_decay: float = 0.5,
) -> sparse.csr_matrix:
    """(n_items, n_items) weighted counts of item j following item i within ``window`` steps of
    one sequence, ``gap_decay ** (gap - 1)`` each; j *preceding* i within the window counts
    ``reverse_weight`` times as much (bought together, in either order). The defaults are plain
    next-item transition counts."""
    rows: list[int] = []
    cols: list[int] = []
    weights: list[float] = []
    for seq in sequences:
        seq = [int(i) for i in seq]
        for gap in range(1, window + 1):
            pairs = max(len(seq) - gap, 0)
            weight = gap_decay ** (gap - 1)
            rows.extend(seq[:-gap])
            cols.extend(seq[gap:])
            weights.extend([weight] * pairs)
            if reverse_weight:
                rows.extend(seq[gap:])
                cols.extend(seq[:-gap])
                weights.extend([weight * reverse_weight] * pairs)
    data = np.asarray(weights, dtype=np.float32)
    # csr_matrix sums duplicate (row, col) pairs: repeated transitions count several times.
    return sparse.csr_matrix((data, (rows, cols)), shape=(n_items, n_items))


class MostPopular:
    """Training-set popularity, the same list for every user."""

    name = "most_popular"

    def __init__(self, item_counts: np.ndarray) -> None:
        self.counts = np.asarray(item_counts, dtype=np.float32)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(histories), self.counts.size)).copy()


class CoOccurrence:
    """ "Bought together": last item -> next item transition counts, backed off to popularity.

    The popularity term is scaled below one transition count, so it only orders items the
    transitions do not separate (and users whose last item has no known successor).
    """

    name = "co_occurrence"

    def __init__(self, sequences: Sequence[Sequence[int]], n_items: int) -> None:
        self.transitions = transition_counts(sequences, n_items)
        # Every item's count as a next item or as a sequence's first item.
        counts = np.asarray(self.transitions.sum(axis=0)).ravel() + np.bincount(
            np.asarray([s[0] for s in sequences if len(s)], dtype=np.int64), minlength=n_items
        ).astype(np.float32)
        self.backoff = 0.5 * counts / max(float(counts.max(initial=0.0)), 1.0)

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.broadcast_to(self.backoff, (len(histories), self.backoff.size)).copy()
        for row, hist in enumerate(histories):
            if len(hist):
                out[row] += self.transitions[int(hist[-1])].toarray().ravel()
        return out


class TextSimilarity:
    """Cosine similarity of item text embeddings to the recency-weighted recent history."""

    name = "text_similarity"

    def __init__(self, item_vectors: np.ndarray, recent: int = 3, decay: float = 0.5) -> None:
        v = np.asarray(item_vectors, dtype=np.float32)
        self.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
        self.recent = recent
        self.decay = decay

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        profiles = np.zeros((len(histories), self.vectors.shape[1]), dtype=np.float32)
        for row, hist in enumerate(histories):
            last = [int(i) for i in hist][-self.recent :][::-1]
            for age, item in enumerate(last):
                profiles[row] += (self.decay**age) * self.vectors[item]
        return profiles @ self.vectors.T
