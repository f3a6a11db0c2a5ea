"""Online agreement from the prediction log (ml/release/gate/online.py): champion and shadow
rows are paired by request and input; other versions and unpaired rows are left out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ml.core.prediction_log import PredictionRecord, write_partitions
from ml.release.gate.online import describe, online_agreement

T0 = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)


def record(
    request: str, role: str, version: str, inp: dict, out: dict, **kw: object
) -> PredictionRecord:
    return PredictionRecord(
        request_id=request,
        family=str(kw.get("family", "intent")),
        model_name="shop-intent",
        model_version=version,
        role=role,
        input=json.dumps(inp),
        output=json.dumps(out),
        latency_ms=3.0,
        ts=T0 + timedelta(minutes=int(kw.get("minute", 0))),  # type: ignore[call-overload]
    )


def intent_log(root: Path) -> None:
    rows = []
    for i in range(10):  # 10 texts over two days; the shadow agrees on 7
        text = {"text": f"where is order {i}"}
        rows.append(record(f"r{i // 2}", "champion", "1", text, {"label": "track_order"}, minute=i))
        label = "track_order" if i < 7 else "cancel_order"
        rows.append(record(f"r{i // 2}", "shadow", "2", text, {"label": label}, minute=i))
    # Not pairs of v1 and v2: an older shadow version, and a champion row with no shadow.
    rows.append(record("r0", "shadow", "0", {"text": "where is order 0"}, {"label": "x"}))
    rows.append(record("r9", "champion", "1", {"text": "alone"}, {"label": "track_order"}))
    write_partitions(root, rows)


def test_intent_agreement_pairs_the_same_request_and_text(tmp_path: Path) -> None:
    intent_log(tmp_path)
    assert len(list(tmp_path.glob("intent/date=*"))) == 2  # the log crossed midnight
    agreement = online_agreement(tmp_path, "intent", "1", "2")
    assert agreement is not None
    assert agreement["value"] == pytest.approx(0.7)
    assert agreement["pairs"] == 10 and agreement["requests"] == 5
    assert agreement["low"] < 0.7 < agreement["high"]
    assert "70.0% label agreement" in describe(agreement)


def test_no_log_or_no_pair_means_no_agreement(tmp_path: Path) -> None:
    assert online_agreement(tmp_path / "missing", "intent", "1", "2") is None
    intent_log(tmp_path)
    assert online_agreement(tmp_path, "intent", "1", "3") is None
    assert online_agreement(tmp_path, "recommender", "1", "2") is None


def test_recommender_agreement_is_the_mean_top_k_overlap(tmp_path: Path) -> None:
    history = {"history": ["i1"], "k": 4}
    write_partitions(
        tmp_path,
        [
            record(
                "a", "champion", "3", history, {"items": ["x", "y", "z", "w"]}, family="recommender"
            ),
            record(
                "a", "shadow", "4", history, {"items": ["y", "x", "q", "r"]}, family="recommender"
            ),
            record(
                "b", "champion", "3", history, {"items": ["x", "y", "z", "w"]}, family="recommender"
            ),
            record(
                "b", "shadow", "4", history, {"items": ["w", "z", "y", "x"]}, family="recommender"
            ),
        ],
    )
    agreement = online_agreement(tmp_path, "recommender", "3", "4")
    assert agreement is not None and agreement["metric"] == "top-k overlap"
    assert agreement["value"] == pytest.approx((0.5 + 1.0) / 2)
