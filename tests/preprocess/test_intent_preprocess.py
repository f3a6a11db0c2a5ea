from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ml.core.config.preprocess import IntentPreprocessConfig, IntentSplitConfig
from ml.core.errors import InputError
from ml.preprocess.intent import normalise_text, preprocess_intent, split_policy

SPLITS = ("train", "val", "test")


def write_partition(
    root: Path, date: str, rows: list[tuple[str, str]], split: list[str] | None = None
) -> None:
    """A validated utterances partition; ``split`` adds the optional official split column."""
    folder = root / "utterances" / f"date={date}"
    folder.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "utterance_id": [f"T{date}-{i}" for i in range(len(rows))],
            "text": [t for t, _ in rows],
            "intent": [lab for _, lab in rows],
            "timestamp": f"{date}T10:00:00Z",
        }
    )
    if split is not None:
        frame["split"] = split
    frame.to_csv(folder / "part-000.csv", index=False)


def read_splits(out: Path) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(out / f"{s}.parquet") for s in SPLITS}


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


def test_official_test_is_kept_and_the_rest_is_split_into_train_and_val_only(
    tmp_path: Path,
) -> None:
    validated = tmp_path / "validated"
    official = [(f"frozen benchmark question {i}", "track_order") for i in range(40)]
    rest = make_rows(400, 1)
    # Official test rows, and rows without a split (empty cells, any case on "Test").
    write_partition(validated, "2026-11-01", official + rest, ["Test"] * 40 + [""] * 400)
    stats = preprocess_intent(validated, tmp_path / "out", IntentPreprocessConfig())
    splits = read_splits(tmp_path / "out")
    assert set(splits["test"]["text"]) == {t for t, _ in official}
    assert stats["split_sizes"]["test"] == 40
    # No extra test share from the unassigned rows, but a val share.
    assert 0.05 < len(splits["val"]) / 400 < 0.16
    assert len(splits["train"]) + len(splits["val"]) == 400
    assert (
        stats["split_policy"] == "official test (40 rows) + hash train/val from the rest (400 rows)"
    )


def test_stratified_rest_gets_val_per_label_but_no_test(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    official = [(f"official test {i}", lab) for i, lab in enumerate(["a", "b"] * 5)]
    rest = [(f"common {i}", "a") for i in range(100)] + [(f"rare {i}", "b") for i in range(4)]
    write_partition(validated, "2026-11-01", official + rest, ["test"] * 10 + [""] * 104)
    cfg = IntentPreprocessConfig(split=IntentSplitConfig(method="stratified"))
    stats = preprocess_intent(validated, tmp_path / "out", cfg)
    splits = read_splits(tmp_path / "out")
    assert stats["split_sizes"] == {"train": 93, "val": 11, "test": 10}
    assert (splits["val"]["label"] == "b").sum() == 1
    assert stats["split_policy"].startswith("official test (10 rows) + stratified train/val")


def test_official_test_and_val_leave_every_other_row_to_train(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    rows = make_rows(60, 1)
    split = ["test"] * 10 + ["VAL"] * 10 + ["train"] * 5 + [""] * 35
    write_partition(validated, "2026-11-01", rows, split)
    stats = preprocess_intent(validated, tmp_path / "out", IntentPreprocessConfig())
    splits = read_splits(tmp_path / "out")
    assert set(splits["test"]["text"]) == {t for t, _ in rows[:10]}
    assert set(splits["val"]["text"]) == {t for t, _ in rows[10:20]}
    assert stats["split_sizes"] == {"train": 40, "val": 10, "test": 10}
    assert stats["split_policy"] == (
        "official test (10 rows) + official val (10 rows) + official train (5 rows)"
        " + train for the rest (35 rows)"
    )


def test_a_text_in_the_official_test_and_elsewhere_stays_only_in_test(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    rows = [
        ("Where is my parcel", "track_order"),  # official test
        ("where is  my PARCEL", "complaint"),  # the same text, unassigned: dropped
        ("where is my parcel", "track_order"),  # the same text, official val: dropped
        ("cancel my order", "cancel_order"),  # official val
        ("Cancel my order", "cancel_order"),  # the same, unassigned: dropped
        ("refund please", "get_refund"),  # official test
        ("refund please", "get_refund"),  # within-test duplicate
    ]
    split = ["test", "", "val", "val", "", "test", "test"]
    write_partition(validated, "2026-11-01", rows[:4], split[:4])
    write_partition(validated, "2026-11-02", rows[4:], split[4:])
    stats = preprocess_intent(validated, tmp_path / "out", IntentPreprocessConfig())
    splits = read_splits(tmp_path / "out")
    assert sorted(splits["test"]["text"]) == ["Where is my parcel", "refund please"]
    assert list(splits["val"]["text"]) == ["cancel my order"]
    assert splits["train"].empty
    # The frozen test keeps its own label: the unassigned copy's vote does not count.
    assert set(splits["test"]["label"]) == {"track_order", "get_refund"}
    assert stats["cross_split_duplicates_removed"] == 3
    assert stats["duplicates_removed"] == 1
    assert stats["duplicates_removed_by_split"] == {
        "train": 0,
        "val": 0,
        "test": 1,
        "unassigned": 0,
    }


def test_partitions_without_a_split_column_mix_with_ones_that_have_it(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    write_partition(validated, "2026-11-01", make_rows(30, 1))  # the shop's: no split column
    write_partition(validated, "2026-11-02", make_rows(5, 2), ["test"] * 5)
    stats = preprocess_intent(validated, tmp_path / "out", IntentPreprocessConfig())
    assert stats["split_sizes"]["test"] == 5
    assert set(read_splits(tmp_path / "out")["test"]["first_seen"]) == {"2026-11-02"}


def test_without_an_official_split_the_policy_is_the_method(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    write_partition(validated, "2026-11-01", make_rows(50, 1))
    stats = preprocess_intent(validated, tmp_path / "out", IntentPreprocessConfig())
    assert stats["split_policy"] == "hash (no official split)"
    assert stats["cross_split_duplicates_removed"] == 0
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert on_disk["split_policy"] == stats["split_policy"]


def test_split_policy_in_words() -> None:
    assert split_policy(pd.Series(["", ""]), "stratified") == "stratified (no official split)"
    assert split_policy(pd.Series(["val", "", ""]), "hash") == (
        "official val (1 row) + hash train/test from the rest (2 rows)"
    )
    assert split_policy(pd.Series(["train", ""]), "hash") == (
        "official train (1 row) + hash train/val/test from the rest (1 row)"
    )
    assert split_policy(pd.Series(["test", "train"]), "hash") == (
        "official test (1 row) + official train (1 row) + no rows without one"
    )


def test_a_hand_edited_split_value_is_a_clear_error(tmp_path: Path) -> None:
    validated = tmp_path / "validated"
    write_partition(validated, "2026-11-01", make_rows(3, 1), ["test", "holdout", ""])
    with pytest.raises(InputError, match=r"column 'split' has values other than .*'holdout'"):
        preprocess_intent(validated, tmp_path / "out", IntentPreprocessConfig())
