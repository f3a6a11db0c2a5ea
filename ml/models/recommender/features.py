"""Item text vectors and user-profile clusters: the fixed inputs the model is built on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ml.models.encoders import encode_texts_cached

TEXT_FIELDS = ("title", "category", "brand", "description")


def item_texts(items: pd.DataFrame) -> list[str]:
    """The text that describes each item: the processed ``text`` column, or (where empty)
    title + category + brand + description joined the same way preprocessing does."""
    composed = (
        items[list(TEXT_FIELDS)]
        .fillna("")
        .astype(str)
        .apply(lambda row: ". ".join(part for part in row if part.strip()), axis=1)
    )
    text = items["text"].fillna("").astype(str) if "text" in items else composed
    return [t if t.strip() else c for t, c in zip(text, composed, strict=True)]


def encode_items(
    items: pd.DataFrame, model_path: str | Path | None, cache_file: str | Path
) -> np.ndarray:
    """L2-normalised text embedding per item (row = item_idx), cached by hash of text+model."""
    return encode_texts_cached(item_texts(items), cache_file, model_path)


def user_profiles(histories: Sequence[Sequence[int]], item_vectors: np.ndarray) -> np.ndarray:
    """Mean text vector of each history; an empty history is the zero vector."""
    out = np.zeros((len(histories), item_vectors.shape[1]), dtype=np.float32)
    for row, hist in enumerate(histories):
        if len(hist):
            out[row] = item_vectors[np.asarray(hist, dtype=np.int64)].mean(axis=0)
    return out


def fit_user_clusters(
    histories: Sequence[Sequence[int]], item_vectors: np.ndarray, n_clusters: int, seed: int
) -> np.ndarray:
    """k-means centroids over training users' profiles (the k-means model, as its centroids)."""
    from sklearn.cluster import KMeans

    profiles = user_profiles(histories, item_vectors)
    k = max(1, min(n_clusters, len(np.unique(profiles, axis=0))))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(profiles)
    return km.cluster_centers_.astype(np.float32)


def assign_clusters(
    histories: Sequence[Sequence[int]], item_vectors: np.ndarray, centroids: np.ndarray
) -> np.ndarray:
    """Nearest centroid of each history's profile (what KMeans.predict does)."""
    profiles = user_profiles(histories, item_vectors)
    d = (
        (profiles**2).sum(1, keepdims=True)
        - 2 * profiles @ centroids.T
        + (centroids**2).sum(1)[None, :]
    )
    return d.argmin(axis=1).astype(np.int64)
