"""Catalog + events -> item table, user id map and leave-last-out item sequences.

A user's sequence is their distinct items (of the configured event types) in the order first
touched. The last item is the test target, the one before it the validation target, and the
rest is training data; users with too few items only contribute to training.

``item_sequences``, ``split_sequences`` and ``write_recsys`` are shared with
``python -m ml import-interactions`` (ml/preprocess/interactions_import.py): one sequence builder
and one split for both sources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ml.core.config.preprocess import InteractionPreprocessConfig
from ml.core.errors import InputError
from ml.core.schemas import CATALOG_COLUMNS, EVENT_COLUMNS, ITEM_PROCESSED_COLUMNS
from ml.preprocess.io import read_validated

# The shop catalog's columns that make an item's text, in this order.
SHOP_TEXT_COLUMNS = ("title", "category", "brand", "description")


def item_text(items: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The text the recommender embeds for each item: the non-empty values of ``columns``
    joined with ". " (as ml.models.recommender.features composes a missing text)."""
    parts = items[list(columns)].fillna("").astype(str)
    return parts.apply(lambda row: ". ".join(v.strip() for v in row if v.strip()), axis=1)


def build_items(catalog: pd.DataFrame) -> pd.DataFrame:
    """One row per item; indices follow first appearance, so new items append at the end and
    existing items keep their index across retrains."""
    items = catalog.sort_values(["first_seen", "partition", "item_id"], kind="stable")
    items = items.drop_duplicates("item_id", keep="first")
    items = items.reset_index(drop=True)
    items["price"] = pd.to_numeric(items["price"], errors="coerce")
    items["text"] = item_text(items, SHOP_TEXT_COLUMNS)
    items.insert(0, "item_idx", range(len(items)))
    return items[list(ITEM_PROCESSED_COLUMNS)]


def item_sequences(interactions: pd.DataFrame, item_index: Mapping[str, int]) -> pd.DataFrame:
    """``user_id, item_id, ts`` rows (kept interactions; the row order breaks timestamp ties) ->
    one row per user, by user_id: ``user_idx``, ``user_id`` and ``item_idx``, the user's distinct
    items in the order first touched. ``attrs["repeats"]``: rows dropped as a repeated item.

    The one sequence builder: the shop's events and ``import-interactions`` both come here."""
    ordered = interactions.sort_values(["user_id", "ts"], kind="stable")
    distinct = ordered.drop_duplicates(["user_id", "item_id"], keep="first")
    distinct = distinct.assign(item_idx=distinct["item_id"].map(item_index))
    seqs = distinct.groupby("user_id", sort=True)["item_idx"].agg(list).reset_index()
    seqs.insert(0, "user_idx", range(len(seqs)))
    seqs.attrs["repeats"] = len(ordered) - len(distinct)
    return seqs


def build_sequences(
    events: pd.DataFrame, item_index: dict[str, int], cfg: InteractionPreprocessConfig
) -> pd.DataFrame:
    """The shop's events -> :func:`item_sequences` of the configured event types."""
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
    seqs = item_sequences(kept.sort_values("event_id", kind="stable"), item_index)
    seqs.attrs["unused_event_types"] = unknown_types
    return seqs


def split_sequences(
    seqs: pd.DataFrame, *, min_sequence_length: int, max_history: int
) -> dict[str, pd.DataFrame]:
    """Leave-last-out: test = last item, val = second to last, train = the rest."""
    train_rows, val_rows, test_rows = [], [], []
    for user_idx, items in zip(seqs["user_idx"], seqs["item_idx"], strict=True):
        items = [int(i) for i in items]
        if len(items) < min_sequence_length:
            train_rows.append((user_idx, items))
            continue
        train_rows.append((user_idx, items[:-2]))
        val_rows.append((user_idx, items[:-2][-max_history:], items[-2]))
        test_rows.append((user_idx, items[:-1][-max_history:], items[-1]))
    return {
        "train": pd.DataFrame(train_rows, columns=["user_idx", "items"]),
        "val": pd.DataFrame(val_rows, columns=["user_idx", "history", "target"]),
        "test": pd.DataFrame(test_rows, columns=["user_idx", "history", "target"]),
    }


def write_recsys(
    out_dir: Path,
    items: pd.DataFrame,
    seqs: pd.DataFrame,
    *,
    min_sequence_length: int,
    max_history: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Items + :func:`item_sequences` -> the recsys Parquet files (ml/core/schemas.py) and
    stats.json (``extra`` added); returns the stats. Both preprocessing paths write here."""
    splits = split_sequences(seqs, min_sequence_length=min_sequence_length, max_history=max_history)
    out_dir.mkdir(parents=True, exist_ok=True)
    items.to_parquet(out_dir / "items.parquet", index=False)
    users = seqs[["user_idx", "user_id"]]
    users.attrs = {}  # the sequences' bookkeeping is in stats.json, not in the file's metadata
    users.to_parquet(out_dir / "users.parquet", index=False)
    for name, frame in splits.items():
        frame.to_parquet(out_dir / f"{name}.parquet", index=False)
    lengths = seqs["item_idx"].map(len)
    stats = {
        "items": len(items),
        "users": len(seqs),
        **extra,
        "interactions": int(lengths.sum()),
        "repeated_items_dropped": int(seqs.attrs.get("repeats", 0)),
        "users_evaluated": len(splits["test"]),
        "median_sequence_length": float(lengths.median()) if len(lengths) else 0.0,
    }
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def preprocess_interactions(
    validated_root: Path, out_dir: Path, cfg: InteractionPreprocessConfig
) -> dict[str, Any]:
    """Validated catalog + events partitions -> the recsys Parquet files (ml/core/schemas.py)."""
    catalog = read_validated(validated_root, "catalog", CATALOG_COLUMNS)
    events = read_validated(validated_root, "events", EVENT_COLUMNS)
    items = build_items(catalog)
    item_index = dict(zip(items["item_id"], items["item_idx"], strict=True))
    seqs = build_sequences(events, item_index, cfg)
    extra = {
        "events_in": len(events),
        "event_types": list(cfg.event_types),
        "event_types_absent": seqs.attrs.get("unused_event_types", []),
    }
    return write_recsys(
        out_dir,
        items,
        seqs,
        min_sequence_length=cfg.min_sequence_length,
        max_history=cfg.max_history,
        extra=extra,
    )
