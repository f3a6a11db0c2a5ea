"""Reference models the fine-tuned classifier must beat: majority class and frozen encoder + LR.

The logistic regression on frozen (normalised, mean-pooled) embeddings also warm-starts the
fine-tuned model's head, so fine-tuning starts from the baseline instead of a random head.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def fit_logistic_head(
    embeddings: np.ndarray, y: np.ndarray, n_labels: int, *, c: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression as a full (n_labels, hidden) weight matrix and bias.

    Classes absent from training get zero weights and a bias far below the others, so they
    are never predicted (rather than the matrix having the wrong shape).
    """
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(y)
    coef = np.zeros((n_labels, embeddings.shape[1]), dtype=np.float32)
    intercept = np.zeros(n_labels, dtype=np.float32)
    if len(classes) == 1:
        intercept[:] = -10.0
        intercept[classes[0]] = 0.0
        return coef, intercept
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    lr.fit(embeddings, y)
    if len(classes) == 2:
        # sklearn stores one vector for the positive class; split it symmetrically.
        w, b = lr.coef_[0] / 2, lr.intercept_[0] / 2
        fitted_coef, fitted_bias = np.stack([-w, w]), np.array([-b, b])
    else:
        fitted_coef, fitted_bias = lr.coef_, lr.intercept_
    intercept[:] = float(fitted_bias.min()) - 10.0
    coef[classes] = fitted_coef
    intercept[classes] = fitted_bias
    return coef, intercept


def linear_proba(embeddings: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    logits = embeddings @ coef.T + intercept
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def save_linear(path: Path, coef: np.ndarray, intercept: np.ndarray, labels: Sequence[str]) -> Path:
    """Stored as plain arrays (npz, no pickle)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, coef=coef, intercept=intercept, labels=np.array(list(labels)))
    return path


def load_linear(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with np.load(path, allow_pickle=False) as data:
        return data["coef"], data["intercept"], [str(x) for x in data["labels"]]


def majority_label(train_labels: Sequence[str]) -> str:
    values, counts = np.unique(np.asarray(train_labels, dtype=str), return_counts=True)
    return str(values[int(np.argmax(counts))])
