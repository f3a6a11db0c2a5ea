"""Adapters that bring external intent data sets into the landing layout.

An external data set becomes an ordinary ``utterances`` landing partition, so it goes through
the same validation and preprocessing as the shop's own data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core.errors import InputError
from ml.core.schemas import UTTERANCE_COLUMNS, partition_name


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
            return pd.read_json(path, lines=True, dtype=False).astype(str)
        if suffix == ".json":
            return pd.DataFrame(json.loads(path.read_text(encoding="utf-8-sig"))).astype(str)
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from exc
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv, .json or .jsonl)")


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
) -> dict[str, Any]:
    """Write ``df`` as the utterances landing partition for ``date``; returns what was written."""
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise InputError(
            f"{source_name}: column(s) {missing} not found; columns are {list(df.columns)}"
        )
    if sample is not None:
        df = stratified_sample(df, label_column, sample, seed)
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
    partition = Path(out_dir) / "utterances" / partition_name(date)
    partition.mkdir(parents=True, exist_ok=True)
    target = partition / "part-000.csv"
    out.to_csv(target, index=False, encoding="utf-8")
    return {
        "source": source_name,
        "partition": str(partition),
        "rows": len(out),
        "labels": int(out["intent"].nunique()),
    }


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
