"""Read rules: each broken file becomes a failed rule naming file, column and rule (no GE)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.validation.reading import read_partition
from ml.validation.report import TABLE

HEADER = "utterance_id,text,intent,timestamp\n"
GOOD_ROWS = (
    'T1,"hello, where is my order",track_order,2026-11-01T10:00:00Z\n'
    "T2,hi,complaint,2026-11-01T11:00:00Z\n"
)


def _partition(tmp_path: Path, data: bytes) -> Path:
    folder = tmp_path / "utterances" / "date=2026-11-01"
    folder.mkdir(parents=True)
    (folder / "part-000.csv").write_bytes(data)
    return folder


def _only_failure(folder: Path, dataset: str = "utterances"):
    outcome = read_partition(folder, dataset)
    failures = [c for c in outcome.checks if not c.success]
    assert failures, "expected a failed read rule"
    return outcome, failures


def test_good_file_parses_types_and_blank_cells_become_null(tmp_path: Path) -> None:
    folder = _partition(
        tmp_path, (HEADER + GOOD_ROWS + "T3,,complaint,2026-11-01T12:00:00Z\n").encode()
    )
    outcome = read_partition(folder, "utterances")
    assert all(c.success for c in outcome.checks)
    frame = outcome.frame
    assert frame is not None and len(frame) == 3
    assert frame.loc[0, "text"] == "hello, where is my order"
    assert frame.loc[2, "text"] is None
    assert isinstance(frame.loc[0, "timestamp"], pd.Timestamp)
    assert str(frame.loc[0, "timestamp"].tz) == "UTC"


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    folder = _partition(tmp_path, b"\xef\xbb\xbf" + (HEADER + GOOD_ROWS).encode())
    outcome = read_partition(folder, "utterances")
    assert outcome.frame is not None and outcome.frame.columns[0] == "utterance_id"


def test_missing_partition_and_missing_file(tmp_path: Path) -> None:
    outcome, failures = _only_failure(tmp_path / "utterances" / "date=2026-11-09")
    assert outcome.frame is None
    assert failures[0].rule == "file_exists"
    assert "date=2026-11-09/part-000.csv" in failures[0].message
    empty_dir = tmp_path / "events" / "date=2026-11-01"
    empty_dir.mkdir(parents=True)
    _, failures = _only_failure(empty_dir, "events")
    assert failures[0].rule == "file_exists" and "not found" in failures[0].message


def test_empty_file(tmp_path: Path) -> None:
    folder = _partition(tmp_path, b"")
    outcome, failures = _only_failure(folder)
    assert outcome.frame is None
    assert [f.rule for f in failures] == ["non_empty_file"]
    assert str(folder / "part-000.csv") in failures[0].message


def test_non_utf8_reports_the_byte_offset_and_line(tmp_path: Path) -> None:
    data = (HEADER + GOOD_ROWS).encode()
    offset = len(HEADER) + 10
    folder = _partition(tmp_path, data[:offset] + b"\xff" + data[offset:])
    _, failures = _only_failure(folder)
    assert failures[0].rule == "utf8_encoding" and failures[0].column == TABLE
    assert f"byte offset {offset} (line 2)" in failures[0].message
    assert "0xff" in failures[0].message


def test_ragged_rows_and_truncation(tmp_path: Path) -> None:
    ragged = HEADER + GOOD_ROWS + "T3,too,few\n"
    _, failures = _only_failure(_partition(tmp_path / "a", ragged.encode()))
    assert [f.rule for f in failures] == ["row_field_count"]
    assert "'line': 4, 'fields': 3" in failures[0].message
    truncated = HEADER + GOOD_ROWS + "T3,where is my parc"
    _, failures = _only_failure(_partition(tmp_path / "b", truncated.encode()))
    assert {f.rule for f in failures} == {"complete_last_row", "row_field_count"}
    open_quote = HEADER + GOOD_ROWS + 'T3,"where is my parc'
    _, failures = _only_failure(_partition(tmp_path / "c", open_quote.encode()))
    assert failures[0].rule == "csv_structure" and "line" in failures[0].message


def test_missing_column_is_named(tmp_path: Path) -> None:
    folder = _partition(tmp_path, b"utterance_id,text,timestamp\nT1,hi,2026-11-01T10:00:00Z\n")
    _, failures = _only_failure(folder)
    assert [(f.rule, f.column) for f in failures] == [("required_column", "intent")]
    assert "column 'intent'" in failures[0].message


@pytest.mark.parametrize(
    ("dataset", "text", "column", "rule"),
    [
        ("utterances", HEADER + "T1,hi,complaint,yesterday-ish\n", "timestamp", "parse_timestamp"),
        (
            "catalog",
            "item_id,title,category,brand,price,description,first_seen\n"
            "I1,Kettle,kitchen,Acme,twelve,A kettle,2026-11-01\n",
            "price",
            "parse_float",
        ),
    ],
)
def test_unparseable_types_keep_the_table_and_null_the_cell(
    tmp_path: Path, dataset: str, text: str, column: str, rule: str
) -> None:
    folder = _partition(tmp_path, text.encode())
    outcome, failures = _only_failure(folder, dataset)
    assert [(f.rule, f.column) for f in failures] == [(rule, column)]
    assert "'line': 2" in failures[0].message
    assert outcome.frame is not None and outcome.frame[column].isna().all()
