from __future__ import annotations

import math

import pandas as pd
import pytest

from ml.core.metrics import total_variation
from ml.validation.label_stats import label_table


def test_total_variation_bounds() -> None:
    assert total_variation(pd.Series({"a": 0.5, "b": 0.5}), pd.Series({"a": 0.5, "b": 0.5})) == 0
    assert total_variation(pd.Series({"a": 1.0}), pd.Series({"b": 1.0})) == 1
    assert total_variation(
        pd.Series({"a": 0.75, "b": 0.25}), pd.Series({"a": 0.25, "b": 0.75})
    ) == pytest.approx(0.5)


def test_label_table_counts_zero_fills_and_distance() -> None:
    labels = pd.Series(["a", "a", "a", "b", None])
    table = label_table(labels, {"a": 1, "b": 1, "c": 2}, expected_labels=["c"])
    assert table.index.tolist() == ["a", "b", "c"]
    assert table["count"].tolist() == [3, 1, 0]
    # partition (0.75, 0.25, 0) vs reference (0.25, 0.25, 0.5): TV = 0.5
    assert table["tv_distance"].unique().tolist() == [pytest.approx(0.5)]


def test_label_table_without_reference_has_no_distance() -> None:
    table = label_table(pd.Series(["x", "y"]), None)
    assert math.isnan(table["tv_distance"].iloc[0])
