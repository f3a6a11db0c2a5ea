"""Out-of-scope threshold selection (precision of rejecting, as defined in ml.models.intent.oos)."""

from __future__ import annotations

import numpy as np

from ml.models.intent.model import apply_threshold
from ml.models.intent.oos import choose_threshold, oos_metrics

OOS = "out_of_scope"


def test_threshold_rejects_the_low_confidence_wrong_predictions() -> None:
    conf = np.array([0.2, 0.3, 0.35, 0.4, 0.9, 0.95, 0.97, 0.99])
    y_true = ["a", OOS, "b", "a", "a", "b", "a", "b"]
    raw = ["b", "a", "a", "a", "a", "b", "a", "b"]  # the 3 least confident are wrong/OOS
    out = choose_threshold(conf, y_true, raw, target_precision=1.0, oos_label=OOS)
    assert 0.35 < out["threshold"] <= 0.4
    assert out["rejected"] == 3
    assert out["rejection_precision"] == 1.0
    # A looser target may also reject the 4th (correct) one: 3/4 = 0.75 >= 0.7.
    loose = choose_threshold(conf, y_true, raw, target_precision=0.7, oos_label=OOS)
    assert loose["rejected"] == 4
    assert 0.4 < loose["threshold"] <= 0.9


def test_threshold_is_zero_when_nothing_can_be_rejected_precisely() -> None:
    conf = np.array([0.5, 0.6, 0.7])
    out = choose_threshold(
        conf, ["a", "a", "a"], ["a", "a", "a"], target_precision=0.9, oos_label=OOS
    )
    assert out["threshold"] == 0.0
    assert out["rejected"] == 0
    assert apply_threshold(["a", "a", "a"], conf, out["threshold"], OOS) == ["a", "a", "a"]


def test_ties_are_not_split() -> None:
    conf = np.array([0.3, 0.3, 0.9])
    out = choose_threshold(
        conf, ["a", "b", "b"], ["b", "b", "b"], target_precision=1.0, oos_label=OOS
    )
    # Rejecting only the first 0.3 would be perfect, but "conf < t" cannot separate the tie.
    assert out["rejected"] == 0


def test_oos_metrics() -> None:
    y_true = [OOS, OOS, "a", "b"]
    raw = ["a", "b", "a", "a"]
    conf = np.array([0.1, 0.8, 0.9, 0.2])
    final = apply_threshold(raw, conf, 0.5, OOS)
    assert final == [OOS, "b", "a", OOS]
    m = oos_metrics(y_true, final, raw, conf, 0.5, OOS)
    assert m["oos_precision"] == 0.5
    assert m["oos_recall"] == 0.5
    assert m["rejection_rate"] == 0.5
    assert m["rejection_precision"] == 1.0
    assert m["accepted_accuracy"] == 0.5
    no_oos = oos_metrics(["a"], ["a"], ["a"], np.array([0.9]), 0.5, OOS)
    assert no_oos["oos_recall"] is None
