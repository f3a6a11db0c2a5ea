"""The optional ``split`` column of utterances through the gate (one GE run, shared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml.core.config import IngestConfig
from ml.validation.partitions import PartitionsQuarantined, validate_landing
from ml.validation.reading import read_partition

from .conftest import NOW, make_params

LABELS = ("alarm_set", "play_music", "weather_query")


def write_partition(landing: Path, date: str, extra: dict[str, list[str]]) -> Path:
    n = 12
    folder = landing / "utterances" / f"date={date}"
    folder.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "utterance_id": [f"U{date}-{i}" for i in range(n)],
            "text": [f"utterance {date} number {i}" for i in range(n)],
            "intent": [LABELS[i % 3] for i in range(n)],
            "timestamp": f"{date}T09:00:00Z",
            **extra,
        }
    )
    frame.to_csv(folder / "part-000.csv", index=False)
    return folder


GOOD = ["test"] * 4 + ["val"] * 2 + ["train"] * 2 + [""] * 4
BAD = ["test"] * 4 + ["holdout"] * 2 + ["Dev"] + [""] * 5


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("official-split")
    params = make_params(root)
    params.ingest = IngestConfig(source="intent_file")
    landing = params.paths.landing
    write_partition(landing, "2026-11-01", {"split": GOOD})
    write_partition(landing, "2026-11-02", {"split": BAD})
    write_partition(landing, "2026-11-03", {"fold": GOOD})
    write_partition(landing, "2026-11-04", {})
    with pytest.raises(PartitionsQuarantined) as caught:
        validate_landing(params, dataset="utterances", now=NOW)
    return {"params": params, "summary": caught.value.summary}


def _status(gated: dict[str, Any], date: str) -> dict[str, Any]:
    [entry] = [p for p in gated["summary"]["partitions"] if p["date"] == date]
    return entry


def test_a_partition_with_a_good_split_column_passes_and_keeps_it(gated: dict[str, Any]) -> None:
    assert _status(gated, "2026-11-01")["status"] == "accepted"
    validated = gated["params"].paths.validated / "utterances" / "date=2026-11-01"
    copied = pd.read_csv(validated / "part-000.csv", dtype=str, keep_default_na=False)
    assert list(copied["split"]) == GOOD


def test_a_partition_without_the_split_column_still_passes(gated: dict[str, Any]) -> None:
    assert _status(gated, "2026-11-04")["status"] == "accepted"


def test_a_bad_split_value_is_quarantined_naming_the_rule(gated: dict[str, Any]) -> None:
    entry = _status(gated, "2026-11-02")
    assert entry["status"] == "quarantined"
    [failure] = entry["failures"]
    assert "column 'split'" in failure and "expect_column_values_to_be_in_set" in failure
    assert "train, val or test" in failure
    assert "3 of 12 values unexpected" in failure and "holdout" in failure and "Dev" in failure
    report = json.loads((Path(entry["destination"]) / "validation.json").read_text())
    assert not report["success"]


def test_another_extra_column_fails_the_column_set_rule(gated: dict[str, Any]) -> None:
    entry = _status(gated, "2026-11-03")
    assert entry["status"] == "quarantined"
    assert any(
        "expect_table_columns_to_match_set" in line and "fold" in line for line in entry["failures"]
    ), entry["failures"]


def test_reading_gives_a_file_without_split_an_all_null_split_column(tmp_path: Path) -> None:
    folder = write_partition(tmp_path, "2026-11-01", {})
    frame = read_partition(folder, "utterances").frame
    assert frame is not None and frame["split"].isna().all()
    folder = write_partition(tmp_path / "b", "2026-11-01", {"split": GOOD})
    frame = read_partition(folder, "utterances").frame
    assert frame is not None
    assert frame["split"].tolist() == [s or None for s in GOOD]
