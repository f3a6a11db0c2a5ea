"""Partition files as text: the landing and validated areas hold ``part-*.csv`` or
``part-*.parquet`` files, and every reader treats a Parquet file's values as the strings a CSV
would hold, so the same type parsing and rules apply to both (a Parquet float ``12.5`` is read
as ``"12.5"``, a timestamp as ISO 8601 text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

PART_PATTERNS = ("part-*.csv", "part-*.parquet")
DATA_SUFFIXES = (".csv", ".parquet")


def is_parquet(file: Path) -> bool:
    return file.suffix.lower() == ".parquet"


def part_files(folder: Path, patterns: tuple[str, ...] = PART_PATTERNS) -> list[Path]:
    """The files of ``folder`` matching any of ``patterns``, in name order."""
    if not folder.is_dir():
        return []
    return sorted({f for pattern in patterns for f in folder.glob(pattern) if f.is_file()})


def parquet_text(source: Any) -> tuple[list[str], list[list[str | None]]]:
    """(column names, columns) of a Parquet file (a path or a pyarrow buffer), every value as
    text and nulls as None. Raises pyarrow's errors: ArrowInvalid for a file that is not
    Parquet or a binary column that is not UTF-8, ArrowNotImplementedError for a nested
    column."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    columns: list[list[str | None]] = []
    for column in table.columns:
        text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
        columns.append(text.to_pylist())
    return list(table.column_names), columns


def read_text_table(file: Path) -> pd.DataFrame:
    """One partition file (CSV or Parquet) with every value as a string ("" for empty/null)."""
    if is_parquet(file):
        header, columns = parquet_text(file)
        frame = pd.DataFrame(dict(zip(header, columns, strict=True)), columns=header, dtype=object)
        return frame.fillna("").astype(str)
    return pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8")
