"""Amazon Scientific as an interactions table + items table: `import-interactions` gives the
sequences `import-recbole` gives, except where a user bought the same item twice.

The RecBole files are leave-one-out by time: a user's full sequence is their test history plus
the test target (no history is truncated in this data set: at most 36 items). It becomes one
row per purchase with made-up increasing epoch timestamps. The one documented difference:
import-interactions keeps a user's distinct items (the first purchase counts, the shop's rule),
RecBole keeps repeats; in this data 114 of 2,928 users (3.9%) have a repeated item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.core.config.interactions_import import InteractionImportConfig
from ml.models.recommender.data import load_recsys
from ml.models.recommender.recbole import import_recbole
from ml.preprocess.interactions_import import import_interactions


def recbole_to_tables(folder: Path, out: Path) -> tuple[Path, Path, dict[str, list[str]]]:
    """(interactions.csv, items.parquet, user_id -> full item_id sequence)."""
    name = "Scientific"
    index = {
        kind: pd.read_csv(
            folder / f"{name}.{kind}2index",
            sep="\t",
            header=None,
            names=["key", "idx"],
            dtype={"key": str},
        ).set_index("idx")["key"]
        for kind in ("user", "item")
    }
    test = pd.read_csv(folder / f"{name}.test.inter", sep="\t", dtype=str)
    test.columns = [c.split(":")[0] for c in test.columns]
    full: dict[str, list[str]] = {}
    rows = []
    for user, history, target in zip(
        test["user_id"], test["item_id_list"], test["item_id"], strict=True
    ):
        seq = [index["item"][int(i)] for i in [*history.split(), target]]
        full[index["user"][int(user)]] = seq
        for position, item in enumerate(seq):
            rows.append((index["user"][int(user)], item, 1_500_000_000 + 86_400 * position))
    interactions = out / "interactions.csv"
    pd.DataFrame(rows, columns=["reviewer", "asin", "unix_time"]).to_csv(interactions, index=False)
    texts = pd.read_csv(
        folder / f"{name}.text", sep="\t", dtype=str, keep_default_na=False, quoting=3
    )
    texts.columns = [c.split(":")[0] for c in texts.columns]
    text_of = dict(zip(texts["item_id"], texts["text"], strict=True))
    items = out / "items.parquet"
    pd.DataFrame(
        {"asin": index["item"].to_numpy(), "text": [text_of.get(k, "") for k in index["item"]]}
    ).to_parquet(items)
    return interactions, items, full


Splits = tuple[list[str], ...] | tuple[list[str], tuple[list[str], str], tuple[list[str], str]]


def by_user(folder: Path) -> dict[str, Splits]:
    """user_id -> (train items,) or (train items, (val history, target), (test history, target))
    in item ids: comparable whatever the user and item indexes."""
    data = load_recsys(folder)
    ids = data.items["item_id"].tolist()
    users = dict(zip(data.users["user_idx"], data.users["user_id"], strict=True))
    out: dict[str, list[Any]] = {
        users[u]: [[ids[i] for i in s]]
        for u, s in zip(data.train["user_idx"], data.train["items"], strict=True)
    }
    for split in (data.val, data.test):
        for u, h, t in zip(split["user_idx"], split["history"], split["target"], strict=True):
            out[users[u]].append(([ids[i] for i in h], ids[t]))
    return {u: tuple(v) for u, v in out.items()}


def leave_last_out(seq: list[str]) -> Splits:
    return seq[:-2], (seq[:-2], seq[-2]), (seq[:-1], seq[-1])


@pytest.mark.real
def test_amazon_scientific_as_tables_matches_import_recbole(
    shared_data: Path, tmp_path: Path
) -> None:
    folder = shared_data / "amazon_scientific"
    interactions, items, full = recbole_to_tables(folder, tmp_path)
    import_recbole(folder, tmp_path / "recbole")
    cfg = InteractionImportConfig.model_validate(
        {
            "interaction_columns": {"user": "reviewer", "item": "asin", "timestamp": "unix_time"},
            "item_columns": {"item": "asin", "text": ["text"], "title": None},
        }
    )
    stats = import_interactions(
        cfg, tmp_path / "tables" / "recsys", interactions=interactions, items=items
    )
    recbole, tables = by_user(tmp_path / "recbole"), by_user(tmp_path / "tables")

    repeated = {u for u, seq in full.items() if len(set(seq)) < len(seq)}
    assert len(full) == 2928 and len(repeated) == 114  # the documented difference, measured
    assert stats["repeated_items_dropped"] == sum(
        len(full[u]) - len(set(full[u])) for u in repeated
    )
    same = [u for u in full if u not in repeated]
    assert all(tables[u] == recbole[u] for u in same)
    assert all(recbole[u] == leave_last_out(full[u]) for u in repeated)
    for u in repeated:  # the distinct items in first-purchase order, split the same way
        distinct = list(dict.fromkeys(full[u]))
        assert tables[u] == (leave_last_out(distinct) if len(distinct) >= 3 else (distinct,))
    assert set(tables) == set(recbole) == set(full)
    differ = sum(tables[u] != recbole[u] for u in full)
    assert differ == len(repeated) <= 0.04 * len(full)
    # The same catalogue, in item2index order, with the same text.
    a, b = load_recsys(tmp_path / "recbole").items, load_recsys(tmp_path / "tables").items
    assert a["item_id"].tolist() == b["item_id"].tolist()
    assert a["text"].tolist() == b["text"].tolist()
