from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.core.config.preprocess import InteractionPreprocessConfig
from ml.core.errors import InputError
from ml.preprocess.interactions import preprocess_interactions


def write(root: Path, dataset: str, date: str, frame: pd.DataFrame) -> None:
    folder = root / dataset / f"date={date}"
    folder.mkdir(parents=True)
    frame.to_csv(folder / "part-000.csv", index=False)


def catalog(ids: list[str], date: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ids,
            "title": [f"Item {i}" for i in ids],
            "category": "cameras",
            "brand": "Acme",
            "price": "9.99",
            "description": "a fine item",
            "first_seen": date,
        }
    )


def events(rows: list[tuple[str, str, str, str]], date: str) -> pd.DataFrame:
    """rows: (event_id, user_id, item_id, event_type) in time order."""
    return pd.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "session_id": "S1",
            "item_id": [r[2] for r in rows],
            "event_type": [r[3] for r in rows],
            "timestamp": [f"{date}T10:{i:02d}:00Z" for i in range(len(rows))],
        }
    )


def test_leave_last_out_by_time_with_stable_item_indices(tmp_path: Path) -> None:
    v = tmp_path / "validated"
    write(v, "catalog", "2026-11-01", catalog(["I3", "I1", "I2", "I4"], "2026-11-01"))
    write(v, "catalog", "2026-11-02", catalog(["I0"], "2026-11-02"))
    write(
        v,
        "events",
        "2026-11-01",
        events(
            [
                ("E1", "U1", "I1", "purchase"),
                ("E2", "U1", "I2", "view"),  # views are not in the sequence
                ("E3", "U1", "I2", "add_to_cart"),
                ("E4", "U1", "I1", "purchase"),  # repeat: first touch counts
                ("E5", "U1", "I3", "purchase"),
                ("E5", "U1", "I3", "purchase"),  # duplicate event id
                ("E6", "U2", "I4", "purchase"),
            ],
            "2026-11-01",
        ),
    )
    write(v, "events", "2026-11-02", events([("E7", "U1", "I0", "purchase")], "2026-11-02"))
    out = tmp_path / "out"
    stats = preprocess_interactions(v, out, InteractionPreprocessConfig())
    items = pd.read_parquet(out / "items.parquet")
    # Initial catalog keeps its order by id; the new day's item appends at the end.
    assert items["item_id"].tolist() == ["I1", "I2", "I3", "I4", "I0"]
    assert items["item_idx"].tolist() == [0, 1, 2, 3, 4]
    assert items.loc[0, "text"] == "Item I1. cameras. Acme. a fine item"
    users = pd.read_parquet(out / "users.parquet")
    u1 = int(users.set_index("user_id").loc["U1", "user_idx"])
    test = pd.read_parquet(out / "test.parquet").set_index("user_idx")
    val = pd.read_parquet(out / "val.parquet").set_index("user_idx")
    train = pd.read_parquet(out / "train.parquet").set_index("user_idx")
    # U1's distinct items in time order: I1, I2, I3, I0 -> idx 0, 1, 2, 4
    assert int(test.loc[u1, "target"]) == 4
    assert list(test.loc[u1, "history"]) == [0, 1, 2]
    assert int(val.loc[u1, "target"]) == 2
    assert list(val.loc[u1, "history"]) == [0, 1]
    assert list(train.loc[u1, "items"]) == [0, 1]
    # U2 has one item: training only.
    u2 = int(users.set_index("user_id").loc["U2", "user_idx"])
    assert u2 not in test.index and list(train.loc[u2, "items"]) == [3]
    assert stats["users_evaluated"] == 1


def test_event_for_unknown_item_is_a_clear_error(tmp_path: Path) -> None:
    v = tmp_path / "validated"
    write(v, "catalog", "2026-11-01", catalog(["I1"], "2026-11-01"))
    write(v, "events", "2026-11-01", events([("E1", "U1", "I9", "purchase")], "2026-11-01"))
    with pytest.raises(InputError, match="absent from the validated catalog"):
        preprocess_interactions(v, tmp_path / "out", InteractionPreprocessConfig())
