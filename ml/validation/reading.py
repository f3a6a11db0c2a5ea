"""Read rules: what must hold before a partition can be handed to Great Expectations.

A landing file (``part-*.csv`` or ``part-*.parquet``) can be missing, empty, not UTF-8, cut
off mid-row or not CSV (not Parquet) at all, lack columns, or hold values that do not parse as
their column's type. A Parquet file's values are read as text first (ml.core.tables), so the
same column and type rules apply to both formats; its examples give the row number as "line".
Each of those becomes a failed :class:`CheckResult` naming the file, the column and the rule
(never a pandas traceback). Only file-level problems stop the partition before GE; type problems are
reported and the offending cells become nulls, so GE can still report everything else.
An optional contract column (utterances' ``split``) that a file lacks is read as all nulls, so
the suite checks one column set and the column's values whether or not the file has it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ml.core.schemas import (
    CATALOG_COLUMNS,
    EVENT_COLUMNS,
    UTTERANCE_COLUMNS,
    UTTERANCE_OPTIONAL_COLUMNS,
)
from ml.core.tables import PART_PATTERNS, is_parquet, parquet_text, part_files
from ml.validation.report import TABLE, CheckResult

EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "catalog": CATALOG_COLUMNS,
    "events": EVENT_COLUMNS,
    "utterances": UTTERANCE_COLUMNS,
}
# Columns a file may lack (then read as nulls); any other extra column fails the suite.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"utterances": UTTERANCE_OPTIONAL_COLUMNS}
# Columns that are not plain text, and the type they must parse as.
COLUMN_TYPES: dict[str, dict[str, str]] = {
    "catalog": {"price": "float", "first_seen": "timestamp"},
    "events": {"timestamp": "timestamp"},
    "utterances": {"timestamp": "timestamp"},
}
PART_GLOB = " or ".join(PART_PATTERNS)
MAX_EXAMPLES = 5
_BOM = b"\xef\xbb\xbf"


@dataclass
class ReadOutcome:
    """The parsed partition (None when a file-level rule failed) and the read rules' results."""

    frame: pd.DataFrame | None
    files: list[Path]
    checks: list[CheckResult] = field(default_factory=list)


def partition_files(partition_dir: Path) -> list[Path]:
    """The data files of a partition, in name order."""
    return part_files(partition_dir)


def _fail(
    file: Path, column: str, rule: str, description: str, detail: str, **kw: Any
) -> CheckResult:
    where = "table" if column == TABLE else f"column '{column}'"
    return CheckResult(
        rule=rule,
        column=column,
        success=False,
        description=description,
        message=f"{file}: {where}: rule {rule} ({description}) failed: {detail}",
        **kw,
    )


def _ok(rule: str, column: str, description: str) -> CheckResult:
    return CheckResult(rule=rule, column=column, success=True, description=description)


def _decode(file: Path, data: bytes) -> tuple[str | None, CheckResult]:
    """UTF-8 text of the file (a byte-order mark is allowed), or the failed encoding rule."""
    rule, desc = "utf8_encoding", "file must be UTF-8 text"
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[skip:].decode("utf-8"), _ok(rule, TABLE, desc)
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        line = data.count(b"\n", 0, offset) + 1
        detail = f"byte 0x{data[offset]:02x} at byte offset {offset} (line {line}) is not UTF-8"
        return None, _fail(
            file,
            TABLE,
            rule,
            desc,
            detail,
            unexpected_count=1,
            unexpected_examples=[{"byte_offset": offset, "line": line}],
        )


def _required_columns(
    file: Path, header: list[str], expected: tuple[str, ...]
) -> list[CheckResult]:
    rule, desc = "required_column", "column must be present in the header"
    present = set(header)
    return [
        _ok(rule, column, desc)
        if column in present
        else _fail(file, column, rule, desc, f"missing; header is {header}")
        for column in expected
    ]


def _parse_parquet(
    file: Path, data: bytes, expected: tuple[str, ...]
) -> tuple[list[str], list[list[str | None]], list[int], list[CheckResult]]:
    """Header, rows as text and each row's number (1-based), plus the structure rules."""
    import pyarrow as pa

    try:
        header, columns = parquet_text(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        if "UTF8" in str(exc) or "utf-8" in str(exc).lower():
            rule, desc = "utf8_encoding", "file must be UTF-8 text"
        else:
            rule, desc = "parquet_structure", "file must be readable Parquet of scalar columns"
        detail = f"not readable as text columns: {type(exc).__name__}: {exc}"
        return [], [], [], [_fail(file, TABLE, rule, desc, detail)]
    rows = [list(row) for row in zip(*columns, strict=True)]
    lines = list(range(1, len(rows) + 1))
    structure = _ok("parquet_structure", TABLE, "file must be readable Parquet of scalar columns")
    return header, rows, lines, [structure, *_required_columns(file, header, expected)]


def _parse_csv(
    file: Path, text: str, expected: tuple[str, ...]
) -> tuple[list[str], list[list[str]], list[int], list[CheckResult]]:
    """Header, rows and each row's line number, plus the CSV-structure rules' results."""
    checks: list[CheckResult] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        header = next(reader)
        for row in reader:
            if row:  # blank lines carry no record
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        detail = f"not parseable as CSV at line {reader.line_num}: {exc}"
        checks.append(_fail(file, TABLE, "csv_structure", "file must be well-formed CSV", detail))
        return [], [], [], checks
    # A writer always ends its last row with a newline; a file cut off mid-row does not.
    rule, desc = "complete_last_row", "file must end with a complete row (newline)"
    if not text.endswith(("\n", "\r")):
        detail = f"the last row (line {text.count(chr(10)) + 1}) has no line terminator: truncated?"
        checks.append(_fail(file, TABLE, rule, desc, detail))
    else:
        checks.append(_ok(rule, TABLE, desc))
    rule, desc = "row_field_count", f"every row must have {len(header)} fields like the header"
    ragged = [
        (line, len(row)) for row, line in zip(rows, lines, strict=True) if len(row) != len(header)
    ]
    if ragged:
        examples = [{"line": line, "fields": n} for line, n in ragged[:MAX_EXAMPLES]]
        detail = f"{len(ragged)} row(s) have the wrong number of fields, e.g. {examples}"
        checks.append(
            _fail(
                file,
                TABLE,
                rule,
                desc,
                detail,
                unexpected_count=len(ragged),
                unexpected_examples=examples,
            )
        )
    else:
        checks.append(_ok(rule, TABLE, desc))
    checks += _required_columns(file, header, expected)
    return header, rows, lines, checks


def _parse_types(
    file: Path, frame: pd.DataFrame, lines: list[int], types: dict[str, str]
) -> list[CheckResult]:
    """Convert typed columns in place; unparseable cells become nulls and a failed rule."""
    checks: list[CheckResult] = []
    for column, kind in types.items():
        raw = frame[column]
        if kind == "float":
            parsed = pd.to_numeric(raw, errors="coerce").astype("float64")
        else:  # timestamps: ISO 8601; values without a zone are taken as UTC
            parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
        bad = raw.notna() & parsed.isna()
        rule, desc = f"parse_{kind}", f"values must parse as {kind}"
        if bad.any():
            idx = list(bad[bad].index)
            examples = [{"line": lines[i], "value": raw.iloc[i]} for i in idx[:MAX_EXAMPLES]]
            detail = f"{len(idx)} of {len(raw)} values do not parse, e.g. {examples}"
            checks.append(
                _fail(
                    file,
                    column,
                    rule,
                    desc,
                    detail,
                    unexpected_count=len(idx),
                    unexpected_examples=examples,
                )
            )
        else:
            checks.append(_ok(rule, column, desc))
        frame[column] = parsed
    return checks


def read_file(file: Path, dataset: str) -> ReadOutcome:
    """Apply the read rules to one part file."""
    expected = EXPECTED_COLUMNS[dataset]
    if not file.is_file():
        return ReadOutcome(
            None,
            [file],
            [_fail(file, TABLE, "file_exists", "partition file must exist", "not found")],
        )
    data = file.read_bytes()
    if not data.strip():
        detail = f"{len(data)} bytes, no header and no rows"
        return ReadOutcome(
            None, [file], [_fail(file, TABLE, "non_empty_file", "file must not be empty", detail)]
        )
    rows: list[list[Any]]
    if is_parquet(file):
        header, rows, lines, checks = _parse_parquet(file, data, expected)
    else:
        text, encoding = _decode(file, data)
        if text is None:
            return ReadOutcome(None, [file], [encoding])
        header, rows, lines, checks = _parse_csv(file, text, expected)
        checks.insert(0, encoding)
    if any(not c.success for c in checks):
        return ReadOutcome(None, [file], checks)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    # An empty cell (or a Parquet null) is a missing value (GE's not-null rules see it as such).
    frame = frame.astype(object).where(frame.notna() & (frame != ""), None)
    for column in OPTIONAL_COLUMNS.get(dataset, ()):
        if column not in frame.columns:
            frame[column] = None
    types = {c: t for c, t in COLUMN_TYPES[dataset].items() if c in frame.columns}
    checks += _parse_types(file, frame, lines, types)
    return ReadOutcome(frame, [file], checks)


def read_partition(partition_dir: Path, dataset: str) -> ReadOutcome:
    """Apply the read rules to every part file of a partition and stack the good ones."""
    if dataset not in EXPECTED_COLUMNS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(EXPECTED_COLUMNS)}")
    files = partition_files(partition_dir)
    if not files:
        missing = partition_dir / "part-000.csv"
        detail = (
            "not found" if partition_dir.is_dir() else f"partition folder {partition_dir} not found"
        )
        rule, desc = "file_exists", f"partition must hold a {PART_GLOB} file"
        return ReadOutcome(None, [missing], [_fail(missing, TABLE, rule, desc, detail)])
    outcomes = [read_file(f, dataset) for f in files]
    checks = [c for o in outcomes for c in o.checks]
    if any(o.frame is None for o in outcomes):
        return ReadOutcome(None, files, checks)
    frames = [o.frame for o in outcomes if o.frame is not None]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return ReadOutcome(frame, files, checks)
