"""An interactions table + an items table -> the processed recsys files (``import-interactions``).

The common shape of real recommendation data: ``user_id, item_id, timestamp`` rows (optionally
an event type and a rating) and an item table with text columns, as CSV or Parquet. Columns and
filters are ``preprocess.import_interactions`` (ml/core/config/interactions_import.py). Filters
apply in this order, each counted: event type, minimum rating, item absent from the items table
(dropped with a warning; an error when no interaction has a known item), then a user's repeated
item (the first time counts). Sequences, the leave-last-out split and the files come from the
shop's own preprocessing (ml/preprocess/interactions.py): the same code for both sources.
Items keep the items table's order (first row of an id), interacted with or not.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.config.interactions_import import InteractionImportConfig, ItemColumns
from ml.core.errors import InputError
from ml.core.schemas import ITEM_PROCESSED_COLUMNS
from ml.preprocess.interactions import item_sequences, item_text, write_recsys

log = logging.getLogger(__name__)

SETTING = "preprocess.import_interactions"
_NUMBER = r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"


def read_input_table(path: Path, setting: str) -> pd.DataFrame:
    """A ``.csv`` / ``.tsv`` (read as strings; a UTF-8 byte-order mark is fine) or ``.parquet``
    file; any problem is one InputError naming the file and ``setting`` (what points at it)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found ({setting})")
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv"}:
            sep = "\t" if suffix == ".tsv" else ","
            return pd.read_csv(
                path, sep=sep, dtype=str, encoding="utf-8-sig", keep_default_na=False
            )
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
    except (UnicodeDecodeError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {first} ({setting})") from exc
    raise InputError(
        f"{path}: unsupported file type {suffix!r}, use .csv, .tsv or .parquet ({setting})"
    )


def require_columns(frame: pd.DataFrame, path: Path, columns: dict[str, str | None]) -> None:
    """``columns``: setting (under SETTING) -> the column it names (None = not used)."""
    for key, column in columns.items():
        if column is not None and column not in frame.columns:
            raise InputError(
                f"{path}: column {column!r} ({SETTING}.{key}) not found; "
                f"columns are {list(frame.columns)}"
            )


def _first_bad(path: Path, column: str, values: pd.Series, bad: pd.Series, rule: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}: column {column!r}, data row {row + 1}: {values.iloc[row]!r} {rule}"
        )


def ids(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """A column of ids as strings; an empty id is an error."""
    values = frame[column]
    text = values.astype(str).str.strip()
    _first_bad(path, column, values, values.isna() | (text == ""), "is not an id (empty)")
    return values.astype(str).reset_index(drop=True)


def parse_timestamps(values: pd.Series, path: Path, column: str, unit: str) -> pd.Series:
    """UTC timestamps from a Parquet timestamp column, epoch numbers (``unit``) or ISO 8601."""
    values = values.reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_numeric_dtype(values):
        parsed = pd.to_datetime(values, unit=unit, utc=True, errors="coerce")
    else:
        text = values.astype(str).str.strip()
        if len(text) and text.str.fullmatch(_NUMBER).all():
            parsed = pd.to_datetime(pd.to_numeric(text), unit=unit, utc=True, errors="coerce")
        else:
            parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    rule = f"is not a timestamp (ISO 8601, or epoch numbers in {SETTING}.timestamp_unit={unit})"
    _first_bad(path, column, values, parsed.isna(), rule)
    return parsed


def ratings(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Numbers; an empty rating is NaN (it fails any min_rating), other text is an error."""
    values = values.reset_index(drop=True)
    number = pd.to_numeric(values.replace("", np.nan), errors="coerce")
    _first_bad(
        path, column, values, number.isna() & values.notna() & (values != ""), "is not a number"
    )
    return number


def build_catalog(table: pd.DataFrame, path: Path, cols: ItemColumns) -> tuple[pd.DataFrame, int]:
    """The items table -> processed items (ITEM_PROCESSED_COLUMNS), one row per id in the
    table's order (the first row of a repeated id wins); returns (items, repeated id rows)."""
    mapped = {
        f"item_columns.{k}": getattr(cols, k) for k in ItemColumns.model_fields if k != "text"
    }
    text_columns = {f"item_columns.text[{i}]": c for i, c in enumerate(cols.text)}
    require_columns(table, path, {**mapped, **text_columns})
    if table.empty:
        raise InputError(f"{path}: the items table has no rows")
    item_ids = ids(table, cols.item, path)
    first = ~item_ids.duplicated()
    table = table.reset_index(drop=True)[first.to_numpy()].reset_index(drop=True)

    def text_of(column: str | None, empty: str = "") -> Any:
        return table[column].fillna("").astype(str) if column else empty

    items = pd.DataFrame(
        {
            "item_idx": np.arange(len(table)),
            "item_id": item_ids[first].reset_index(drop=True),
            "title": text_of(cols.title),
            "category": text_of(cols.category, "unknown"),
            "brand": text_of(cols.brand),
            "price": pd.to_numeric(table[cols.price], errors="coerce") if cols.price else np.nan,
            "description": text_of(cols.description),
            "text": item_text(table, cols.text),
        }
    )
    return items[list(ITEM_PROCESSED_COLUMNS)], int((~first).sum())


def select_interactions(
    table: pd.DataFrame, path: Path, cfg: InteractionImportConfig, known: set[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``user_id, item_id, ts`` of the rows the filters keep, in file order, and the counts."""
    cols = cfg.interaction_columns
    require_columns(
        table, path, {f"interaction_columns.{k}": getattr(cols, k) for k in cols.model_fields}
    )
    frame = pd.DataFrame(
        {
            "user_id": ids(table, cols.user, path),
            "item_id": ids(table, cols.item, path),
            "ts": parse_timestamps(table[cols.timestamp], path, cols.timestamp, cfg.timestamp_unit),
        }
    )
    counts: dict[str, Any] = {
        "rows_in": len(frame),
        "dropped_event_type": 0,
        "event_types_absent": [],
        "dropped_rating": 0,
    }
    keep = pd.Series(True, index=frame.index)
    if cfg.event_types is not None and cols.event_type is not None:
        types = table[cols.event_type].astype(str).reset_index(drop=True)
        counts["event_types_absent"] = sorted(set(cfg.event_types) - set(types))
        ok = types.isin(cfg.event_types)
        counts["dropped_event_type"] = int((keep & ~ok).sum())
        keep &= ok
    if cfg.min_rating is not None and cols.rating is not None:
        ok = ratings(table[cols.rating], path, cols.rating) >= cfg.min_rating
        counts["dropped_rating"] = int((keep & ~ok).sum())
        keep &= ok
    unknown = keep & ~frame["item_id"].isin(known)
    counts["dropped_unknown_item"] = int(unknown.sum())
    keep &= ~unknown
    return frame[keep], counts


def _check_kept(kept: pd.DataFrame, counts: dict[str, Any], path: Path, items_path: Path) -> None:
    if counts["dropped_unknown_item"] and kept.empty:
        raise InputError(
            f"{path}: none of the {counts['dropped_unknown_item']} interactions left by the "
            f"filters has an item_id of the items table {items_path}: wrong file or column?"
        )
    if kept.empty:
        raise InputError(f"{path}: no interaction is left after the filters ({counts})")
    if counts["dropped_unknown_item"]:
        log.warning(
            "%s: %d interactions dropped: their item is not in the items table %s",
            path,
            counts["dropped_unknown_item"],
            items_path,
        )


def _source(given: str | Path | None, configured: Path | None, key: str) -> tuple[Path, str]:
    """(file, what named it): the command line's ``--<key>`` wins over the setting."""
    if given is not None:
        return Path(given), f"--{key}"
    if configured is None:
        raise InputError(f"no {key} file: give --{key} FILE or set {SETTING}.{key}")
    return Path(configured), f"{SETTING}.{key}"


def import_interactions(
    cfg: InteractionImportConfig,
    out_dir: str | Path,
    *,
    interactions: str | Path | None = None,
    items: str | Path | None = None,
) -> dict[str, Any]:
    """Write the recsys files (ml/core/schemas.py) and stats.json under ``out_dir``; returns
    the counts. ``interactions`` / ``items`` (the command line's files) win over ``cfg``."""
    inter_path, inter_setting = _source(interactions, cfg.interactions, "interactions")
    items_path, items_setting = _source(items, cfg.items, "items")
    catalog, repeated_ids = build_catalog(
        read_input_table(items_path, items_setting), items_path, cfg.item_columns
    )
    table = read_input_table(inter_path, inter_setting)
    kept, counts = select_interactions(table, inter_path, cfg, set(catalog["item_id"]))
    _check_kept(kept, counts, inter_path, items_path)
    item_index = dict(zip(catalog["item_id"], catalog["item_idx"], strict=True))
    seqs = item_sequences(kept, item_index)
    extra = {
        "interactions_file": str(inter_path),
        "items_file": str(items_path),
        "output": str(out_dir),
        **counts,
        "items_repeated_rows": repeated_ids,
        "items_without_interactions": len(catalog) - int(kept["item_id"].nunique()),
        "items_without_text": int((catalog["text"] == "").sum()),
    }
    return write_recsys(
        Path(out_dir),
        catalog,
        seqs,
        min_sequence_length=cfg.min_sequence_length,
        max_history=cfg.max_history,
        extra=extra,
    )
