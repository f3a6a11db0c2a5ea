from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml.core.config.preprocess import IntentPreprocessConfig, IntentSplitConfig
from ml.core.errors import InputError
from ml.preprocess.intent import normalise_text, preprocess_intent


def write_partition(root: Path, date: str, rows: list[tuple[str, str]]) -> None:
    folder = root / "utterances" / f"date={date}"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "utterance_id": [f"T{date}-{i}" for i in range(len(rows))],
            "text": [t for t, _ in rows],
            "intent": [lab for _, lab in rows],
            "timestamp": f"{date}T10:00:00Z",
        }
    ).to_csv(folder / "part-000.csv", index=False)


def make_rows(n: int, day: int) -> list[tuple[str, str]]:
    labels = ["track_order", "cancel_order", "get_refund"]
    return [(f"message {day}-{i} about {labels[i % 3]}", labels[i % 3]) for i in range(n)]


def test_normalise_text_collapses_whitespace_and_unicode() -> None:
    assert normalise_text("  where\u00a0is   my\tparcel ") == "where is my parcel"
    assert normalise_text("Ｗhere", lowercase=True) == "where"


def test_splits_are_disjoint_deterministic_and_stable_as_data_grows(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    write_partition(validated, "2026-11-01", make_rows(600, 1))
    cfg = IntentPreprocessConfig()
    out1 = tmp_path / "p1"
    stats = preprocess_intent(validated, out1, cfg)
    splits = {s: pd.read_parquet(out1 / f"{s}.parquet") for s in ("train", "val", "test")}
    ids = [set(df["example_id"]) for df in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert stats["rows_out"] == 600
    assert 0.08 < len(splits["test"]) / 600 < 0.22
    assert json.loads((out1 / "label_map.json").read_text())["labels"] == [
        "cancel_order",
        "get_refund",
        "track_order",
    ]
    # Same input -> same bytes.
    out2 = tmp_path / "p2"
    preprocess_intent(validated, out2, cfg)
    for s in ("train", "val", "test"):
        assert (out1 / f"{s}.parquet").read_bytes() == (out2 / f"{s}.parquet").read_bytes()
    # A new day of data never moves an old test text into train.
    write_partition(validated, "2026-11-02", make_rows(300, 2))
    out3 = tmp_path / "p3"
    preprocess_intent(validated, out3, cfg)
    test3 = set(pd.read_parquet(out3 / "test.parquet")["example_id"])
    train3 = set(pd.read_parquet(out3 / "train.parquet")["example_id"])
    assert ids[2] <= test3
    assert not (ids[2] & train3)


def test_duplicates_and_label_conflicts_are_resolved(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    rows = [
        ("Where is my order", "track_order"),
        ("where  is my ORDER", "track_order"),
        ("where is my order", "cancel_order"),
        ("cancel it please", "cancel_order"),
    ]
    write_partition(validated, "2026-11-01", rows)
    stats = preprocess_intent(validated, tmp_path / "out", IntentPreprocessConfig())
    assert stats["duplicates_removed"] == 2
    assert stats["label_conflicts"] == 1
    frames = pd.concat(
        pd.read_parquet(tmp_path / "out" / f"{s}.parquet") for s in ("train", "val", "test")
    )
    assert frames.set_index("text").loc["Where is my order", "label"] == "track_order"


def test_stratified_split_gives_every_label_test_examples(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    rows = [(f"common question {i}", "payment_issue") for i in range(200)]
    rows += [(f"rare question {i}", "cancel_order") for i in range(5)]
    write_partition(validated, "2026-11-01", rows)
    cfg = IntentPreprocessConfig(split=IntentSplitConfig(method="stratified"))
    preprocess_intent(validated, tmp_path / "out", cfg)
    test = pd.read_parquet(tmp_path / "out" / "test.parquet")
    val = pd.read_parquet(tmp_path / "out" / "val.parquet")
    assert (test["label"] == "cancel_order").sum() == 1
    assert (val["label"] == "cancel_order").sum() == 1
    assert (test["label"] == "payment_issue").sum() == 30


def test_missing_validated_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no validated utterances partitions"):
        preprocess_intent(tmp_path, tmp_path / "out", IntentPreprocessConfig())
