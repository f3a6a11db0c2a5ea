"""Out-of-scope operating points (ml/models/intent/oos.py): the trade-off curve and the policies
that choose a threshold on it, on small data whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ml.models.intent.oos import choose_operating_point, tradeoff_curve

OOS = "out_of_scope"
# Six in-scope rows (five right, one wrong at 0.55) and four out-of-scope rows the model labels
# in-scope with confidences 0.3, 0.5, 0.6 and 0.95.
CONF = np.array([0.9, 0.8, 0.7, 0.65, 0.62, 0.55, 0.3, 0.5, 0.6, 0.95])
TRUE = ["a", "a", "b", "b", "a", "b", OOS, OOS, OOS, OOS]
RAW = ["a", "a", "b", "b", "a", "a", "a", "b", "a", "b"]


def at(threshold: float) -> dict:
    return tradeoff_curve(CONF, TRUE, RAW, oos_label=OOS, thresholds=[threshold])[0]


def test_curve_points_by_hand() -> None:
    assert at(0.0) == {
        "threshold": 0.0,
        "in_scope_accuracy": pytest.approx(5 / 6),
        "oos_recall": 0.0,
        "rejection_rate": 0.0,
    }
    # Below 0.61: the wrong in-scope row (0.55) and three out-of-scope rows are rejected.
    point = at(0.61)
    assert point["in_scope_accuracy"] == pytest.approx(5 / 6)
    assert point["oos_recall"] == pytest.approx(3 / 4)
    assert point["rejection_rate"] == pytest.approx(4 / 10)
    # Below 0.66 also two right in-scope answers go.
    assert at(0.66)["in_scope_accuracy"] == pytest.approx(3 / 6)
    full = tradeoff_curve(CONF, TRUE, RAW, oos_label=OOS)
    assert full[0]["threshold"] == 0.0 and full[-1]["rejection_rate"] == 1.0
    assert [p["threshold"] for p in full] == sorted(p["threshold"] for p in full)


def test_the_models_own_out_of_scope_label_counts_as_caught() -> None:
    point = tradeoff_curve([0.9], [OOS], [OOS], oos_label=OOS, thresholds=[0.0])[0]
    assert point["oos_recall"] == 1.0 and point["in_scope_accuracy"] is None


def choose(policy: str, **kw: float) -> dict:
    return choose_operating_point(
        CONF, TRUE, RAW, policy=policy, oos_label=OOS, min_oos_rows=1, **kw
    )


def test_policies_pick_the_expected_thresholds() -> None:
    recall = choose("oos_recall", target_recall=0.75)
    assert recall["threshold"] == pytest.approx(0.61)  # just above the third (0.6)
    assert recall["validation"]["oos_recall"] == pytest.approx(0.75)
    assert recall["validation"]["in_scope_accuracy"] == pytest.approx(5 / 6)
    # No in-scope loss allowed: as far as 0.61 (rejecting 0.62 costs a right answer).
    lossless = choose("max_in_scope_loss", max_in_scope_loss=0.0)
    assert lossless["threshold"] == pytest.approx(0.61)
    # Missing an out-of-scope row costs 1 wrong answer: 0.61 costs 1 miss; 0.96 costs 5 wrong.
    cost = choose("cost", cost_ratio=1.0)
    assert cost["validation"]["oos_recall"] == pytest.approx(0.75)
    expensive = choose("cost", cost_ratio=10.0)  # now catching the 0.95 one is worth it
    assert expensive["validation"]["oos_recall"] == 1.0
    assert all(c["warning"] is None for c in (recall, lossless, cost, expensive))


def test_too_few_or_no_out_of_scope_rows_warn_or_fall_back() -> None:
    few = choose_operating_point(CONF, TRUE, RAW, policy="oos_recall", oos_label=OOS)
    assert "only 4 out-of-scope rows" in few["warning"]
    in_scope = slice(0, 6)
    none = choose_operating_point(
        CONF[in_scope], TRUE[in_scope], RAW[in_scope], policy="cost", oos_label=OOS
    )
    assert none["policy"] == "rejection_precision" and "fell back" in none["warning"]
    with pytest.raises(ValueError, match="unknown out-of-scope policy"):
        choose("most_confident")
