"""The prediction log on its own: buffered writes from many threads, partitions, the reader."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ml.core.prediction_log import (
    PREDICTION_LOG_COLUMNS,
    PredictionLogWriter,
    PredictionRecord,
    read_prediction_log,
)


def record(
    i: int, family: str = "intent", role: str = "champion", **kw: object
) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"r{i}",
        family=family,
        model_name=f"{family}-model",
        model_version="1",
        role=role,
        input=json.dumps({"text": f"text {i}"}),
        output=json.dumps({"label": "track_order"}),
        latency_ms=1.5,
        **kw,  # type: ignore[arg-type]
    )


def test_rows_written_from_threads_are_all_read_back(tmp_path: Path) -> None:
    writer = PredictionLogWriter(tmp_path, flush_interval_s=0.05)
    threads = [
        threading.Thread(target=lambda t=t: writer.append(record(t * 100 + i) for i in range(50)))
        for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    log = read_prediction_log(tmp_path, "intent")
    assert list(log.columns) == list(PREDICTION_LOG_COLUMNS)
    assert len(log) == 200 and log["request_id"].is_unique
    assert str(log["ts"].dt.tz) == "UTC" and log["ts"].is_monotonic_increasing
    assert writer.written == 200 and writer.dropped == 0
    files = list(tmp_path.glob("intent/date=*/part-*.parquet"))
    assert files and not list(tmp_path.rglob(".*.tmp"))


def test_partitions_by_family_and_utc_date_and_date_filters(tmp_path: Path) -> None:
    today = datetime.now(UTC)
    yesterday = today - timedelta(days=1)
    writer = PredictionLogWriter(tmp_path, flush_interval_s=60)
    writer.append([record(1, ts=yesterday), record(2, ts=today)])
    writer.append([record(3, family="recommender", role="shadow", ts=today)])
    writer.close()  # nothing flushed before close: close writes it
    assert {p.name for p in (tmp_path / "intent").iterdir()} == {
        f"date={yesterday.date()}",
        f"date={today.date()}",
    }
    assert len(read_prediction_log(tmp_path)) == 3
    assert read_prediction_log(tmp_path, "intent", since=today.date())["request_id"].tolist() == [
        "r2"
    ]
    rec = read_prediction_log(tmp_path, "recommender")
    assert rec[["role", "family"]].values.tolist() == [["shadow", "recommender"]]


def test_an_empty_log_is_an_empty_frame_with_the_columns(tmp_path: Path) -> None:
    log = read_prediction_log(tmp_path / "absent", "intent", until=date(2030, 1, 1))
    assert log.empty and list(log.columns) == list(PREDICTION_LOG_COLUMNS)
