"""Adapters that bring external intent data sets into the landing layout.

An external data set becomes an ordinary ``utterances`` landing partition, so it goes through
the same validation and preprocessing as the shop's own data. A data set's official split (a
frozen test fold, say) travels with each row as the optional ``split`` column, so preprocessing
keeps it instead of re-splitting those rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.errors import InputError
from ml.core.schemas import OFFICIAL_SPLITS, UTTERANCE_COLUMNS, UTTERANCE_SPLIT, partition_name

# The column of a combined frame (with_official_splits) that holds each row's official split.
OFFICIAL_SPLIT_KEY = "__official_split__"
# Rows sampling may thin out: the training pool. Official val and test rows are kept whole.
SAMPLED_SPLITS = ("", "train")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (a UTF-8 byte-order mark is fine), JSON array or JSON-lines file as strings."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv", ".txt"}:
            sep = "\t" if suffix == ".tsv" else ","
            # utf-8-sig strips the byte-order mark that would otherwise glue itself to column 1.
            return pd.read_csv(
                path, sep=sep, dtype=str, encoding="utf-8-sig", keep_default_na=False
            )
        if suffix in {".jsonl", ".ndjson"}:
            return _as_text(pd.read_json(path, lines=True, dtype=False))
        if suffix == ".json":
            return _as_text(pd.DataFrame(json.loads(path.read_text(encoding="utf-8-sig"))))
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from exc
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv, .json or .jsonl)")


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Every cell as a string; a JSON null is an empty string (as an empty CSV cell is)."""
    return df.astype(object).where(df.notna(), "").astype(str)


def _require_columns(df: pd.DataFrame, source_name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"{source_name}: column(s) {missing} not found; columns are {list(df.columns)}"
        )


def official_split_values(values: pd.Series, *, source_name: str, column: str) -> pd.Series:
    """A split column as ``train``/``val``/``test`` or ``""`` (not assigned), any case on input.

    Any other value is an InputError naming the file, the column, the rule, how many rows break
    it and a few of their values.
    """
    norm = values.fillna("").astype(str).str.strip().str.lower()
    bad = ~norm.isin([*OFFICIAL_SPLITS, ""])
    if bad.any():
        examples = list(dict.fromkeys(values[bad].astype(str)))[:5]
        raise InputError(
            f"{source_name}: split column {column!r} has {int(bad.sum())} row(s) with values "
            f"other than train, val or test (any case; empty = not assigned), e.g. {examples}"
        )
    return norm


def with_official_splits(
    df: pd.DataFrame,
    *,
    source_name: str,
    text_column: str,
    label_column: str,
    split_column: str | None = None,
    split_files: Mapping[str, tuple[pd.DataFrame, str]] | None = None,
) -> pd.DataFrame:
    """``df``'s rows, then those of ``split_files`` ({split: (frame, file name)}), as text, label
    and OFFICIAL_SPLIT_KEY columns: ``df``'s split comes from ``split_column`` (empty when none),
    every row of a split file gets that file's split."""
    columns = [text_column, label_column]
    _require_columns(df, source_name, columns)
    if split_column is not None and split_column not in df.columns:
        raise InputError(
            f"{source_name}: split column {split_column!r} (ingest.split_column) not found; "
            f"columns are {list(df.columns)}"
        )
    split = (
        official_split_values(df[split_column], source_name=source_name, column=split_column)
        if split_column is not None
        else ""
    )
    parts = [df[columns].assign(**{OFFICIAL_SPLIT_KEY: split})]
    for name, (frame, file_name) in (split_files or {}).items():
        _require_columns(frame, file_name, columns)
        parts.append(frame[columns].assign(**{OFFICIAL_SPLIT_KEY: name}))
    return pd.concat(parts, ignore_index=True)


def stratified_sample(df: pd.DataFrame, label_column: str, n: int, seed: int) -> pd.DataFrame:
    """About ``n`` rows keeping each label's share (every label keeps at least one row)."""
    if n >= len(df):
        return df
    rng = np.random.default_rng(seed)
    parts = []
    for _, group in df.groupby(label_column, sort=True):
        take = max(1, round(n * len(group) / len(df)))
        parts.append(group.iloc[rng.permutation(len(group))[:take]])
    return pd.concat(parts).sort_index()


def intent_frame_to_landing(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    text_column: str,
    label_column: str,
    date: str,
    source_name: str,
    sample: int | None = None,
    seed: int = 0,
    split_column: str | None = None,
) -> dict[str, Any]:
    """Write ``df`` as the utterances landing partition for ``date``; returns what was written.

    ``split_column`` (e.g. OFFICIAL_SPLIT_KEY of :func:`with_official_splits`) holds each row's
    official split, written as the partition's ``split`` column; ``sample`` then thins out only
    the training pool (unassigned and train rows), never official val or test rows.
    """
    _require_columns(df, source_name, [text_column, label_column])
    split = None
    if split_column is not None:
        _require_columns(df, source_name, [split_column])
        split = official_split_values(
            df[split_column], source_name=source_name, column=split_column
        )
    if sample is not None:
        pool = split.isin(SAMPLED_SPLITS) if split is not None else pd.Series(True, df.index)
        kept = stratified_sample(df[pool], label_column, sample, seed)
        df = pd.concat([kept, df[~pool]]).sort_index()
    prefix = hashlib.sha1(source_name.encode(), usedforsecurity=False).hexdigest()[:6]
    out = pd.DataFrame(
        {
            "utterance_id": [f"X{prefix}-{i:06d}" for i in range(len(df))],
            "text": df[text_column].to_numpy(),
            "intent": df[label_column].to_numpy(),
            "timestamp": f"{date}T00:00:00Z",
        },
        columns=list(UTTERANCE_COLUMNS),
    )
    if split is not None:
        out[UTTERANCE_SPLIT] = split.loc[df.index].to_numpy()
    partition = Path(out_dir) / "utterances" / partition_name(date)
    partition.mkdir(parents=True, exist_ok=True)
    target = partition / "part-000.csv"
    out.to_csv(target, index=False, encoding="utf-8")
    written: dict[str, Any] = {
        "source": source_name,
        "partition": str(partition),
        "rows": len(out),
        "labels": int(out["intent"].nunique()),
    }
    if split is not None:
        counts = out[UTTERANCE_SPLIT].value_counts()
        written["official_splits"] = {
            name or "unassigned": int(counts.get(name, 0)) for name in (*OFFICIAL_SPLITS, "")
        }
    return written


def bitext_to_landing(
    csv_path: str | Path, out_dir: str | Path, *, date: str, sample: int | None, seed: int
) -> dict[str, Any]:
    """The Bitext customer-support sample (``flags,utterance,category,intent``)."""
    csv_path = Path(csv_path)
    df = read_table(csv_path)
    return intent_frame_to_landing(
        df,
        out_dir,
        text_column="utterance",
        label_column="intent",
        date=date,
        source_name=str(csv_path.name),
        sample=sample,
        seed=seed,
    )
