"""Parquet partitions (``part-*.parquet``) go through the same read rules and Great Expectations
suites as CSV ones: typed Parquet columns are read as text first, so a good partition passes
and reaches preprocessing, and a bad one is quarantined naming the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.core.schemas import EVENT_COLUMNS
from ml.preprocess.io import read_validated
from ml.validation.partitions import PartitionsQuarantined, validate_landing
from ml.validation.reading import read_partition

from .conftest import NOW, make_params, write_world

TYPED = {"price": "float", "first_seen": "timestamp", "timestamp": "timestamp"}


def to_parquet(folder: Path, edit: Any = None) -> pd.DataFrame:
    """Rewrite ``folder/part-000.csv`` as a typed ``part-000.parquet`` (real floats and UTC
    timestamps, as a shop's export would hold them); ``edit`` may change the frame first."""
    csv = folder / "part-000.csv"
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    for column, kind in TYPED.items():
        if column in frame.columns:
            if kind == "float":
                frame[column] = frame[column].astype(float)
            else:
                frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    if edit is not None:
        frame = edit(frame)
    frame.to_parquet(folder / "part-000.parquet", index=False)
    csv.unlink()
    return frame


EMAIL = "jane.doe+shop@example.com"


def with_email(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[0], "text"] = f"please write to {EMAIL} about my order"
    return frame


def bad_timestamp(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["timestamp"] = frame["timestamp"].astype(str)
    frame.loc[frame.index[:2], "timestamp"] = "yesterday-ish"
    return frame


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Day 1: all three datasets as Parquet, one utterance carrying an e-mail address (accepted
    utterances are scrubbed of personal data on their way to validated/). Day 2: catalog and
    events Parquet, utterances Parquet with two timestamps that are not timestamps."""
    params = make_params(tmp_path_factory.mktemp("parquet"))
    write_world(params, days=2)
    landing = params.paths.landing
    frames = {}
    for dataset in ("catalog", "events"):
        frames[dataset] = to_parquet(landing / dataset / "date=2026-11-01")
        to_parquet(landing / dataset / "date=2026-11-02")
    frames["utterances"] = to_parquet(landing / "utterances" / "date=2026-11-01", with_email)
    to_parquet(landing / "utterances" / "date=2026-11-02", bad_timestamp)
    with pytest.raises(PartitionsQuarantined) as caught:
        validate_landing(params, now=NOW)
    return {"params": params, "summary": caught.value.summary, "frames": frames}


def _entry(gated: dict[str, Any], dataset: str, date: str) -> dict[str, Any]:
    [entry] = [
        p for p in gated["summary"]["partitions"] if p["dataset"] == dataset and p["date"] == date
    ]
    return entry


def test_good_parquet_partitions_are_accepted_and_read_by_preprocessing(
    gated: dict[str, Any],
) -> None:
    for dataset in ("catalog", "events"):
        for date in ("2026-11-01", "2026-11-02"):
            assert _entry(gated, dataset, date)["status"] == "accepted", (dataset, date)
    assert _entry(gated, "utterances", "2026-11-01")["status"] == "accepted"
    params = gated["params"]
    utterances = params.paths.validated / "utterances" / "date=2026-11-01" / "part-000.parquet"
    texts = pd.read_parquet(utterances)["text"].tolist()
    assert texts[0] == "please write to <EMAIL> about my order"
    assert len(texts) == len(gated["frames"]["utterances"])
    assert not any(EMAIL in t for t in texts)
    validated = params.paths.validated / "catalog" / "date=2026-11-01"
    assert (validated / "part-000.parquet").is_file()
    events = read_validated(params.paths.validated, "events", EVENT_COLUMNS)
    day1 = events[events["partition"] == "2026-11-01"]
    source = gated["frames"]["events"]
    assert len(day1) == len(source)
    assert day1["item_id"].tolist() == source["item_id"].tolist()
    # Timestamps come back as text that preprocessing parses like a CSV's.
    parsed = pd.to_datetime(day1["timestamp"], utc=True, format="ISO8601")
    assert parsed.tolist() == source["timestamp"].tolist()


def test_a_bad_parquet_partition_is_quarantined_naming_the_rule(gated: dict[str, Any]) -> None:
    entry = _entry(gated, "utterances", "2026-11-02")
    assert entry["status"] == "quarantined"
    assert any(
        "column 'timestamp'" in line and "parse_timestamp" in line and "yesterday-ish" in line
        for line in entry["failures"]
    ), entry["failures"]
    quarantined = Path(entry["destination"])
    assert (quarantined / "part-000.parquet").is_file()
    assert "parse_timestamp" in (quarantined / "REASON.txt").read_text()


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "utterances" / "date=2026-11-01"
    folder.mkdir(parents=True)
    return folder


def _utterances(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "utterance_id": [f"U{i}" for i in range(n)],
            "text": [f"where is order {i}" for i in range(n)],
            "intent": ["track_order"] * n,
            "timestamp": pd.to_datetime(["2026-11-01T10:00:00Z"] * n, utc=True),
        }
    )


def test_parquet_read_rules_match_csv(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "good")
    frame = _utterances()
    frame.loc[1, "text"] = None  # a Parquet null is a missing value, like an empty CSV cell
    frame.to_parquet(folder / "part-000.parquet", index=False)
    outcome = read_partition(folder, "utterances")
    assert all(c.success for c in outcome.checks)
    assert outcome.frame is not None and outcome.frame["text"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert str(outcome.frame["timestamp"].dt.tz) == "UTC"

    folder = _folder(tmp_path / "missing-column")
    _utterances().drop(columns=["intent"]).to_parquet(folder / "part-000.parquet", index=False)
    failures = [c for c in read_partition(folder, "utterances").checks if not c.success]
    assert [(c.rule, c.column) for c in failures] == [("required_column", "intent")]

    folder = _folder(tmp_path / "not-parquet")
    (folder / "part-000.parquet").write_bytes(b"utterance_id,text\nU1,hi\n")
    failures = [c for c in read_partition(folder, "utterances").checks if not c.success]
    assert [c.rule for c in failures] == ["parquet_structure"]
    assert "part-000.parquet" in failures[0].message

    folder = _folder(tmp_path / "not-utf8")
    frame = _utterances()
    frame["text"] = [b"ok", b"\xff\xfe bad", b"ok"]
    frame.to_parquet(folder / "part-000.parquet", index=False)
    failures = [c for c in read_partition(folder, "utterances").checks if not c.success]
    assert [c.rule for c in failures] == ["utf8_encoding"]
