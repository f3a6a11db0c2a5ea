"""`import-interactions`: an interactions table + an items table -> the processed recsys files,
through the same sequence and split code as the shop's own preprocessing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.cli import main
from ml.core.config import load_params
from ml.core.config.data import DriftConfig, GeneratorConfig
from ml.core.config.interactions_import import InteractionImportConfig
from ml.core.config.preprocess import InteractionPreprocessConfig
from ml.core.errors import ConfigError, InputError
from ml.data.synthetic import generate_world
from ml.preprocess.interactions import preprocess_interactions
from ml.preprocess.interactions_import import import_interactions

RECSYS_FILES = ("items", "users", "train", "val", "test")


def rows(folder: Path, name: str) -> list[dict[str, Any]]:
    """A processed file as plain rows (list columns as lists), for exact comparison."""
    frame = pd.read_parquet(folder / f"{name}.parquet")
    return [
        {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def read_partitions(root: Path, dataset: str) -> pd.DataFrame:
    files = sorted((root / dataset).glob("date=*/*.csv"))
    return pd.concat(
        [pd.read_csv(f, dtype=str, keep_default_na=False) for f in files], ignore_index=True
    )


# ------------------------------------------------------------------- the shop, both ways


def test_shop_exported_as_tables_gives_the_native_files(tmp_path: Path) -> None:
    gen = GeneratorConfig(
        n_items=80,
        n_users=60,
        utterances_per_day=10,
        days=3,
        drift=DriftConfig(new_items=4, start_day=1),
    )
    landing = tmp_path / "landing"
    generate_world(gen, landing)
    native = tmp_path / "native"
    native_stats = preprocess_interactions(landing, native, InteractionPreprocessConfig())

    # The shop's export: every event (views too) in event-id order under other column names,
    # and the catalog in launch order as Parquet.
    events = read_partitions(landing, "events").sort_values("event_id")
    events.rename(
        columns={"user_id": "customer", "item_id": "sku", "event_type": "action", "timestamp": "at"}
    ).to_csv(tmp_path / "interactions.csv", index=False)
    catalog = read_partitions(landing, "catalog").sort_values(["first_seen", "item_id"])
    catalog.rename(columns={"item_id": "sku"}).to_parquet(tmp_path / "items.parquet")
    cfg = InteractionImportConfig.model_validate(
        {
            "interaction_columns": {
                "user": "customer",
                "item": "sku",
                "timestamp": "at",
                "event_type": "action",
            },
            "item_columns": {
                "item": "sku",
                "text": ["title", "category", "brand", "description"],
                "title": "title",
                "category": "category",
                "brand": "brand",
                "price": "price",
                "description": "description",
            },
            "event_types": ["purchase", "add_to_cart"],
        }
    )
    imported = tmp_path / "imported"
    stats = import_interactions(
        cfg,
        imported,
        interactions=tmp_path / "interactions.csv",
        items=tmp_path / "items.parquet",
    )

    for name in RECSYS_FILES:
        assert rows(imported, name) == rows(native, name), name
    assert stats["users_evaluated"] == native_stats["users_evaluated"] > 20
    assert stats["interactions"] == native_stats["interactions"]
    assert stats["repeated_items_dropped"] == native_stats["repeated_items_dropped"] > 0
    assert stats["dropped_event_type"] == (events["event_type"] == "view").sum()
    assert stats["rows_in"] == len(events)


# ------------------------------------------------------------------- filters and duplicates


def write_tables(
    folder: Path, interactions: list[tuple[Any, ...]], columns: tuple[str, ...]
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    inter = folder / "interactions.csv"
    pd.DataFrame(interactions, columns=list(columns)).to_csv(inter, index=False)
    items = folder / "items.csv"
    pd.DataFrame(
        {
            "item_id": ["A", "B", "C", "D", "E", "B"],
            "title": ["Lamp", "Kettle", "Drill", "Sock", "Tent", "Kettle again"],
            "blurb": ["warm light", "", "cordless", "wool", "for two", "x"],
        }
    ).to_csv(items, index=False)
    return inter, items


def cfg_for(**overrides: Any) -> InteractionImportConfig:
    base: dict[str, Any] = {"item_columns": {"text": ["title", "blurb"], "description": "blurb"}}
    return InteractionImportConfig.model_validate({**base, **overrides})


def sequences(folder: Path) -> dict[str, dict[str, Any]]:
    """user_id -> {train, val, test} with item ids."""
    ids = [r["item_id"] for r in rows(folder, "items")]
    users = {r["user_idx"]: r["user_id"] for r in rows(folder, "users")}
    out: dict[str, dict[str, Any]] = {u: {} for u in users.values()}
    for r in rows(folder, "train"):
        out[users[r["user_idx"]]]["train"] = [ids[i] for i in r["items"]]
    for split in ("val", "test"):
        for r in rows(folder, split):
            out[users[r["user_idx"]]][split] = ([ids[i] for i in r["history"]], ids[r["target"]])
    return out


def test_filters_duplicates_and_time_order(tmp_path: Path) -> None:
    columns = ("user_id", "item_id", "timestamp", "event_type", "rating")
    inter, items = write_tables(
        tmp_path,
        [
            ("u1", "C", 1700000300, "buy", "5"),
            ("u1", "A", 1700000100, "buy", "4"),
            ("u1", "B", 1700000200, "buy", "2"),  # rating below 3
            ("u1", "D", 1700000200, "view", "5"),  # not a kept event type
            ("u1", "A", 1700000400, "buy", "5"),  # repeat: the first time counts
            ("u1", "E", 1700000500, "cart", "3"),
            ("u1", "B", 1700000500, "cart", "4"),  # same second as E: file order
            ("u1", "Z", 1700000600, "buy", "5"),  # not in the items table
            ("u2", "E", 1700000100, "buy", ""),  # no rating: fails min_rating
            ("u2", "D", 1700000100, "buy", "5"),
        ],
        columns,
    )
    cfg = cfg_for(
        interaction_columns={"event_type": "event_type", "rating": "rating"},
        event_types=["buy", "cart", "refund"],
        min_rating=3,
    )
    stats = import_interactions(cfg, tmp_path / "out", interactions=inter, items=items)
    seqs = sequences(tmp_path / "out")
    # u1 in time order: A(100) C(300) [A(400) repeat] E(500) B(500)
    assert seqs["u1"] == {
        "train": ["A", "C"],
        "val": (["A", "C"], "E"),
        "test": (["A", "C", "E"], "B"),
    }
    assert seqs["u2"] == {"train": ["D"]}  # too short for val/test
    assert stats["dropped_event_type"] == 1
    assert stats["dropped_rating"] == 2
    assert stats["dropped_unknown_item"] == 1
    assert stats["repeated_items_dropped"] == 1
    assert stats["event_types_absent"] == ["refund"]
    assert stats["interactions"] == 5 and stats["users"] == 2 and stats["users_evaluated"] == 1
    # Every item stays in the catalogue, interacted with or not; the first row of an id wins.
    catalog = rows(tmp_path / "out", "items")
    assert [r["item_id"] for r in catalog] == ["A", "B", "C", "D", "E"]
    assert catalog[1]["text"] == "Kettle" and catalog[0]["text"] == "Lamp. warm light"
    assert catalog[0]["description"] == "warm light" and catalog[0]["category"] == "unknown"
    assert stats["items_repeated_rows"] == 1 and stats["items_without_interactions"] == 0


def test_no_filter_keeps_every_row_and_history_is_capped(tmp_path: Path) -> None:
    inter, items = write_tables(
        tmp_path,
        [("u1", item, f"2026-01-0{day}T00:00:00Z") for day, item in enumerate("ABCDE", 1)],
        ("user_id", "item_id", "timestamp"),
    )
    stats = import_interactions(
        cfg_for(max_history=2), tmp_path / "out", interactions=inter, items=items
    )
    assert sequences(tmp_path / "out")["u1"] == {
        "train": ["A", "B", "C"],
        "val": (["B", "C"], "D"),
        "test": (["C", "D"], "E"),
    }
    assert stats["rows_in"] == stats["interactions"] == 5
    assert stats["dropped_event_type"] == stats["dropped_rating"] == 0


def test_parquet_timestamps_and_integer_ids(tmp_path: Path) -> None:
    inter = tmp_path / "i.parquet"
    pd.DataFrame(
        {
            "user": [7, 7, 7],
            "item": [3, 1, 2],
            "when": pd.to_datetime(["2026-01-03", "2026-01-01", "2026-01-02"]),
        }
    ).to_parquet(inter)
    items = tmp_path / "items.parquet"
    pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", None]}).to_parquet(items)
    cfg = InteractionImportConfig.model_validate(
        {
            "interaction_columns": {"user": "user", "item": "item", "timestamp": "when"},
            "item_columns": {"item": "id", "text": ["name"], "title": "name"},
        }
    )
    import_interactions(cfg, tmp_path / "out", interactions=inter, items=items)
    assert sequences(tmp_path / "out")["7"]["test"] == (["1", "2"], "3")
    assert [r["text"] for r in rows(tmp_path / "out", "items")] == ["a", "b", ""]


def test_unknown_items_warn_and_all_unknown_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cols = ("user_id", "item_id", "timestamp")
    inter, items = write_tables(tmp_path / "a", [("u", "A", "1"), ("u", "Q", "2")], cols)
    with caplog.at_level(logging.WARNING):
        stats = import_interactions(cfg_for(), tmp_path / "out", interactions=inter, items=items)
    assert stats["dropped_unknown_item"] == 1 and "not in the items table" in caplog.text
    inter, items = write_tables(tmp_path / "b", [("u", "Q", "1"), ("v", "R", "2")], cols)
    with pytest.raises(InputError, match=r"none of the 2 interactions .* items table"):
        import_interactions(cfg_for(), tmp_path / "out", interactions=inter, items=items)


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_file", r"nope\.csv: file not found \(--interactions\)"),
        (
            "missing_column",
            r"interactions\.csv: column 'timestamp' "
            r"\(preprocess\.import_interactions\.interaction_columns\.timestamp\) not found",
        ),
        (
            "missing_text_column",
            r"items\.csv: column 'summary' "
            r"\(preprocess\.import_interactions\.item_columns\.text\[1\]\) not found",
        ),
        (
            "bad_timestamp",
            r"interactions\.csv: column 'timestamp', data row 2: 'yesterday' is not a timestamp",
        ),
        ("empty_user", r"interactions\.csv: column 'user_id', data row 1: '' is not an id"),
        ("bad_rating", r"interactions\.csv: column 'rating', data row 1: 'five' is not a number"),
        ("bad_suffix", r"items\.xlsx: unsupported file type '\.xlsx'"),
        (
            "no_file_given",
            r"no items file: give --items FILE or set preprocess\.import_interactions\.items",
        ),
    ],
)
def test_bad_input_is_one_input_error(tmp_path: Path, case: str, message: str) -> None:
    good = [("u", "A", "2026-01-01T00:00:00Z", "4"), ("u", "B", "2026-01-02T00:00:00Z", "4")]
    data = {
        "bad_timestamp": [good[0], ("u", "B", "yesterday", "4")],
        "empty_user": [("", "A", "2026-01-01", "4")],
        "bad_rating": [("u", "A", "2026-01-01", "five")],
    }.get(case, good)
    columns = ("user_id", "item_id", "time" if case == "missing_column" else "timestamp", "rating")
    inter, items = write_tables(tmp_path, data, columns)
    cfg = cfg_for(interaction_columns={"rating": "rating"}, min_rating=1)
    kwargs: dict[str, Any] = {"interactions": inter, "items": items}
    if case == "missing_file":
        kwargs["interactions"] = tmp_path / "nope.csv"
    if case == "missing_text_column":
        cfg = cfg_for(item_columns={"text": ["title", "summary"]})
    if case == "bad_suffix":
        kwargs["items"] = tmp_path / "items.xlsx"
        kwargs["items"].write_text("x")
    if case == "no_file_given":
        kwargs["items"] = None
    with pytest.raises(InputError, match=message) as err:
        import_interactions(cfg, tmp_path / "out", **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_filter_without_its_column_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"import_interactions: .*min_rating needs interaction_columns\.rating"
    ):
        load_params(tmp_path / "absent.yaml", {"preprocess.import_interactions.min_rating": 3})


def test_cli_writes_recsys_and_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inter, items = write_tables(
        tmp_path,
        [("u", item, f"2026-01-0{day}") for day, item in enumerate("ABCD", 1)],
        ("user_id", "item_id", "timestamp"),
    )
    base = ["import-interactions", "--params", str(tmp_path / "absent.yaml")]
    files = ["--interactions", str(inter), "--items", str(items), "--out", str(tmp_path / "p")]
    assert (
        main(
            [
                *base,
                *files,
                "--set",
                "preprocess.import_interactions.item_columns.text=[title,blurb]",
            ]
        )
        == 0
    )
    assert '"users_evaluated": 1' in capsys.readouterr().out
    assert sequences(tmp_path / "p" / "recsys")["u"]["test"] == (["A", "B", "C"], "D")
    bad = [*files, "--set", "preprocess.import_interactions.interaction_columns.user=customer"]
    assert main([*base, *bad]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "column 'customer'" in err and "\n" not in err
