"""Whole retrain DAG runs with ``dag.test()`` on a tiny synthetic shop and a tiny BERT.

SQLite Airflow metadata, local MLflow (sqlite), real steps: ingest, validate (Great
Expectations), preprocess, train, evaluate, gate, registry.

Task logs that read right are checked on the first run: in a worker, Airflow 3's supervisor
forwards the task process's stderr to the task log at ERROR
(airflow/sdk/execution_time/supervisor.py: the ``task.stderr`` forwarder, ``log_level=ERROR``)
and its logging records at their own level. ``dag.test()`` runs the tasks in this process:
there, what reaches file descriptor 2 is what a worker's task log would show as ERROR lines,
and every logging record the tasks emit passes ``logging.Logger.callHandlers``.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from ml.cli import run_step


def _run(project: Path, family: str, conf: dict[str, Any] | None = None) -> Any:
    from ml.orchestration.dags import build_retrain_dag
    from ml.orchestration.settings import OrchestrationSettings

    # No retries: a failure in a test should surface at once.
    settings = OrchestrationSettings(project_dir=project, retries=0)
    return build_retrain_dag(family, settings).test(run_conf=conf or {})


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _summary(project: Path, dag_run: Any) -> dict[str, Any]:
    from ml.orchestration.runtime import StepLedger

    ledger = StepLedger(project / "reports", dag_run.dag_id, dag_run.run_id)
    summary = ledger.get("summary")
    assert summary is not None, f"no summary in {ledger.folder}"
    return summary


def _champion(project: Path, family: str) -> Any:
    import os

    cwd = os.getcwd()
    os.chdir(project)
    try:
        return run_step(["registry", "status", family])["champion"]
    finally:
        os.chdir(cwd)


def _spy_on_log_records(monkeypatch: pytest.MonkeyPatch) -> list[logging.LogRecord]:
    """Every logging record emitted from now on, whichever handler takes it."""
    records: list[logging.LogRecord] = []
    call_handlers = logging.Logger.callHandlers

    def spy(self: logging.Logger, record: logging.LogRecord) -> None:
        records.append(record)
        call_handlers(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", spy)
    return records


def _assert_logs_read_right(err: str, records: list[logging.LogRecord]) -> None:
    """A successful run: nothing on stderr, no ERROR record; progress and library messages
    and the preflight table are INFO records."""
    stderr_lines = [line for line in err.splitlines() if line.strip()]
    assert stderr_lines == [], (
        f"{len(stderr_lines)} line(s) on stderr, ERROR lines in a worker's task log:\n"
        + "\n".join(line[:200] for line in stderr_lines[:20])
    )
    errors = [f"{r.name}: {r.getMessage()[:200]}" for r in records if r.levelno >= logging.ERROR]
    assert errors == []
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any(re.match(r"epoch \d+/\d+: 100% \(\d+/\d+ batches\) in \d+s", m) for m in info)
    assert any(m.startswith("check ") and "status" in m for m in info)  # preflight table
    assert any("Created version '1' of model" in m for m in info)  # MLflow's event message


def test_intent_retrain_promotes_first_then_rejects_a_weaker_challenger(
    tiny_project: Path,
    airflow_db: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = _spy_on_log_records(monkeypatch)
    capfd.readouterr()
    first = _run(tiny_project, "intent")
    _, err = capfd.readouterr()
    states = _states(first)
    assert str(first.state) == "success", states
    _assert_logs_read_right(err, records)
    assert states["promote"] == "success" and states["reject"] == "skipped"
    summary = _summary(tiny_project, first)
    assert summary["promoted"] is True and summary["version"] == "1"
    assert summary["decision"] == "promote"
    assert "/#/experiments/" in summary["mlflow_run_link"]
    assert "macro_f1" in summary["metrics"]

    # Same data, but the gate now demands a +0.5 macro-F1 improvement: the challenger loses.
    second = _run(
        tiny_project,
        "intent",
        {"epochs": 1, "overrides": ["gate.intent.primary.min_abs_change=0.5"]},
    )
    states = _states(second)
    assert str(second.state) == "success", states
    assert states["promote"] == "skipped" and states["reject"] == "success"
    summary = _summary(tiny_project, second)
    assert summary["promoted"] is False and summary["version"] == "2"
    assert summary["decision"] != "promote"
    assert _champion(tiny_project, "intent") == "1"


def test_validation_failure_quarantines_and_stops_the_run(
    tiny_project: Path, airflow_db: Path
) -> None:
    import os

    cwd = os.getcwd()
    os.chdir(tiny_project)
    try:
        # Day 3 lands broken (a required column is missing) next to three good days.
        run_step(
            ["generate", "--first-day", "3", "--days", "1", "--corrupt", "missing_column",
             "--corrupt-dataset", "utterances"]
        )  # fmt: skip
    finally:
        os.chdir(cwd)
    run = _run(tiny_project, "intent", {"first_day": 0, "days": 3})
    states = _states(run)
    assert str(run.state) == "failed"
    assert states["ingest"] == "success" and states["validate"] == "failed"
    for task_id in ("preprocess", "train", "evaluate", "gate", "promote", "summary"):
        assert states[task_id] == "upstream_failed", (task_id, states)
    quarantined = list((tiny_project / "data" / "quarantine" / "utterances").glob("date=*"))
    assert [p.name for p in quarantined] == ["date=2026-11-04"]
    report = json.loads((quarantined[0] / "validation.json").read_text())
    assert report  # the reason travels with the data
    assert not (tiny_project / "models" / "intent" / "registration.json").exists()


@pytest.mark.parametrize("family", ["recommender"])
def test_recommender_retrain_runs_end_to_end(
    tiny_project: Path, airflow_db: Path, family: str
) -> None:
    run = _run(tiny_project, family, {"dry_run": True})
    states = _states(run)
    assert str(run.state) == "success", states
    # dry run: trained, evaluated and gated, never promoted
    assert states["promote"] == "skipped" and states["reject"] == "success"
    summary = _summary(tiny_project, run)
    assert summary["dry_run"] is True and summary["promoted"] is False
    assert summary["version"] == "1"
    assert "ndcg@10" in summary["metrics"] or summary["metrics"]
    assert _champion(tiny_project, family) is None
