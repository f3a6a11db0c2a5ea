"""Classification metrics: scikit-learn as the independent reference, hand-computed ECE, and
weighted calls equal to the same metric on the resampled rows (what the gate's bootstrap uses)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ml.core import metrics as m
from ml.core.stats import paired_difference, resample_weights


@pytest.fixture
def labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y_true = rng.choice(["a", "b", "c", "d"], size=300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.choice(["a", "b", "e"], size=300))
    return y_true, y_pred


def test_accuracy_and_macro_f1_match_sklearn(labels: tuple[np.ndarray, np.ndarray]) -> None:
    y_true, y_pred = labels
    got = m.classification_metrics(y_true, y_pred)
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    # "e" is only predicted: sklearn counts it (F1 0), and so do we.
    assert got["macro_f1"] == pytest.approx(
        f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12
    )


def test_macro_f1_does_not_depend_on_unused_classes(labels: tuple[np.ndarray, np.ndarray]) -> None:
    """Two callers may code classes over different sets (the gate adds the champion's); the
    value must be bit-identical, not merely close."""
    y_true, y_pred = labels
    (t, p), classes = m.encode_labels(y_true, y_pred)
    (t2, p2, _), classes2 = m.encode_labels(y_true, y_pred, ["0_extra", "zz_extra"])
    assert len(classes2) == len(classes) + 2
    assert m.macro_f1(t, p, len(classes)) == m.macro_f1(t2, p2, len(classes2))


def test_weighted_metrics_equal_metrics_on_resampled_rows(
    labels: tuple[np.ndarray, np.ndarray],
) -> None:
    y_true, y_pred = labels
    (t, p), classes = m.encode_labels(y_true, y_pred)
    conf = np.random.default_rng(1).random(len(t))
    weights = next(resample_weights(len(t), 4, seed=0))
    acc = m.accuracy(t == p, weights)
    f1 = m.macro_f1(t, p, len(classes), weights)
    ece = m.expected_calibration_error(conf, t == p, weights=weights)
    for b in range(4):
        rows = np.repeat(np.arange(len(t)), weights[b].astype(int))
        assert acc[b] == pytest.approx(accuracy_score(t[rows], p[rows]))
        assert f1[b] == pytest.approx(f1_score(t[rows], p[rows], average="macro", zero_division=0))
        assert ece[b] == pytest.approx(m.expected_calibration_error(conf[rows], (t == p)[rows]))


def test_ece_bins_are_right_closed_and_hand_computed() -> None:
    # 10 bins: 0.1 belongs to bin 0 ((0, 0.1]), 0.1000001 to bin 1, 0.0 to bin 0, 1.0 to bin 9.
    assert m.confidence_bins(np.array([0.0, 0.1, 0.1000001, 1.0]), 10).tolist() == [0, 0, 1, 9]
    conf = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([1, 0, 1, 1])
    # bin (0.9, 1.0]: acc 0.5, conf 0.95 -> gap 0.45, weight 1/2; bin (0.5, 0.6]: acc 1, conf 0.55
    # -> gap 0.45, weight 1/2.
    assert m.expected_calibration_error(conf, correct, n_bins=10) == pytest.approx(0.45)
    bins = m.reliability_bins(conf, correct, n_bins=10)
    used = bins[bins["count"] > 0]
    assert used["count"].tolist() == [2, 2]
    ece = (used["count"] * (used["accuracy"] - used["confidence"]).abs()).sum() / 4
    assert ece == pytest.approx(m.expected_calibration_error(conf, correct, n_bins=10))


def test_paired_difference_of_identical_sides_is_exactly_zero() -> None:
    correct = np.random.default_rng(0).random(200) < 0.8
    out = paired_difference(
        lambda w: m.accuracy(correct, w), lambda w: m.accuracy(correct, w), 200, resamples=1000
    )
    assert out == {"difference": 0.0, "low": 0.0, "high": 0.0, "confidence": 0.95}
    better = paired_difference(
        lambda w: m.accuracy(np.ones(200), w), lambda w: m.accuracy(correct, w), 200
    )
    assert better["low"] is not None and better["low"] > 0
