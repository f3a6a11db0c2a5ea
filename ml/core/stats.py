"""Paired bootstrap over rows: resample counts as weight matrices, percentile intervals.

Each resample is a vector of row counts, so any metric of :mod:`ml.core.metrics` evaluated with
those weights is that metric on the resample; a whole chunk of resamples is one matrix product.
Both sides of a comparison get the same resamples (paired).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def resample_weights(n: int, resamples: int, seed: int, chunk: int = 256) -> Iterator[np.ndarray]:
    """Bootstrap row counts, ``chunk`` resamples at a time (a (chunk, n) float matrix)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        done += size


def percentile_interval(
    samples: np.ndarray, confidence: float
) -> tuple[float | None, float | None]:
    """Central ``confidence`` interval of the finite samples (None, None when there are none)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None, None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_difference(
    metric_a: Callable[[np.ndarray], np.ndarray],
    metric_b: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float | None]:
    """Point difference a - b and its paired bootstrap interval.

    ``metric_a`` / ``metric_b`` map a (B, n) weight matrix to B values (the weighted metrics of
    :mod:`ml.core.metrics`); the point value uses all rows once.
    """
    ones = np.ones((1, n))
    point = float(metric_a(ones)[0] - metric_b(ones)[0])
    diffs = [metric_a(w) - metric_b(w) for w in resample_weights(n, resamples, seed)]
    low, high = percentile_interval(np.concatenate(diffs) if diffs else np.zeros(0), confidence)
    return {"difference": point, "low": low, "high": high, "confidence": confidence}
