"""Catalog + events -> item table, user id map and leave-last-out item sequences.

A user's sequence is their distinct items (of the configured event types) in the order first
touched. The last item is the test target, the one before it the validation target, and the
rest is training data; users with too few items only contribute to training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ml.core.config.preprocess import InteractionPreprocessConfig
from ml.core.errors import InputError
from ml.core.schemas import CATALOG_COLUMNS, EVENT_COLUMNS, ITEM_PROCESSED_COLUMNS
from ml.preprocess.io import read_validated


def item_text(row: pd.Series) -> str:
    """The text the recommender embeds for an item."""
    return f"{row['title']}. {row['category']}. {row['brand']}. {row['description']}"


def build_items(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per item; indices follow first appearance, so new items append at the end and
    existing items keep their index across retrains."""
    items = catalog.sort_values(["first_seen", "partition", "item_id"], kind="stable")
    items = items.drop_duplicates("item_id", keep="first")
    items = items.reset_index(drop=True)
    items["price"] = pd.to_numeric(items["price"], errors="coerce")
    items["text"] = items.apply(item_text, axis=1)
    items.insert(0, "item_idx", range(len(items)))
    return items[list(ITEM_PROCESSED_COLUMNS)]


def build_sequences(
    events: pd.DataFrame, item_index: dict[str, int], cfg: InteractionPreprocessConfig
) -> pd.DataFrame:
    """user_id -> list of distinct item indices in time order."""
    unknown_types = sorted(set(cfg.event_types) - set(events["event_type"].unique()))
    kept = events[events["event_type"].isin(cfg.event_types)]
    kept = kept.drop_duplicates("event_id")
    missing = sorted(set(kept["item_id"]) - set(item_index))
    if missing:
        raise InputError(
            f"events refer to {len(missing)} item_id(s) absent from the validated catalog, "
            f"e.g. {missing[:5]}: validation should have caught this"
        )
    kept = kept.assign(ts=pd.to_datetime(kept["timestamp"], utc=True, format="ISO8601"))
    kept = kept.sort_values(["user_id", "ts", "event_id"], kind="stable")
    kept = kept.drop_duplicates(["user_id", "item_id"], keep="first")
    kept = kept.assign(item_idx=kept["item_id"].map(item_index))
    seqs = kept.groupby("user_id", sort=True)["item_idx"].agg(list).reset_index()
    seqs.attrs["unused_event_types"] = unknown_types
    return seqs


def split_sequences(
    seqs: pd.DataFrame, cfg: InteractionPreprocessConfig
) -> dict[str, pd.DataFrame]:
    """Leave-last-out: test = last item, val = second to last, train = the rest."""
    train_rows, val_rows, test_rows = [], [], []
    for user_idx, items in zip(seqs["user_idx"], seqs["item_idx"], strict=True):
        items = [int(i) for i in items]
        if len(items) < cfg.min_sequence_length:
            train_rows.append((user_idx, items))
            continue
        train_rows.append((user_idx, items[:-2]))
        val_rows.append((user_idx, items[:-2][-cfg.max_history :], items[-2]))
        test_rows.append((user_idx, items[:-1][-cfg.max_history :], items[-1]))
    return {
        "train": pd.DataFrame(train_rows, columns=["user_idx", "items"]),
        "val": pd.DataFrame(val_rows, columns=["user_idx", "history", "target"]),
        "test": pd.DataFrame(test_rows, columns=["user_idx", "history", "target"]),
    }


def preprocess_interactions(
    validated_root: Path, out_dir: Path, cfg: InteractionPreprocessConfig
) -> dict[str, Any]:
    """Validated catalog + events partitions -> the recsys Parquet files (ml/core/schemas.py)."""
    catalog = read_validated(validated_root, "catalog", CATALOG_COLUMNS)
    events = read_validated(validated_root, "events", EVENT_COLUMNS)
    items = build_items(catalog)
    item_index = dict(zip(items["item_id"], items["item_idx"], strict=True))
    seqs = build_sequences(events, item_index, cfg)
    seqs.insert(0, "user_idx", range(len(seqs)))
    users = seqs[["user_idx", "user_id"]]
    splits = split_sequences(seqs, cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    items.to_parquet(out_dir / "items.parquet", index=False)
    users.to_parquet(out_dir / "users.parquet", index=False)
    for name, frame in splits.items():
        frame.to_parquet(out_dir / f"{name}.parquet", index=False)
    lengths = seqs["item_idx"].map(len)
    stats = {
        "items": len(items),
        "users": len(users),
        "events_in": len(events),
        "interactions": int(lengths.sum()),
        "users_evaluated": len(splits["test"]),
        "median_sequence_length": float(lengths.median()) if len(lengths) else 0.0,
        "event_types": list(cfg.event_types),
        "event_types_absent": seqs.attrs.get("unused_event_types", []),
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats
