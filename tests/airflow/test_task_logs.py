"""Task logs that read right: a successful retrain run logs no ERROR line.

In a worker, Airflow 3's supervisor forwards the task process's stderr to the task log at ERROR
(airflow/sdk/execution_time/supervisor.py: the ``task.stderr`` forwarder, ``log_level=ERROR``)
and its logging records at their own level. ``dag.test()`` runs the tasks in this process:
there, what reaches file descriptor 2 is what a worker's task log would show as ERROR lines,
and every logging record the tasks emit passes ``logging.Logger.callHandlers``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest


def test_successful_retrain_logs_no_error_line(
    tiny_project: Path,
    airflow_db: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ml.orchestration.dags import build_retrain_dag
    from ml.orchestration.settings import OrchestrationSettings

    records: list[logging.LogRecord] = []
    call_handlers = logging.Logger.callHandlers

    def spy(self: logging.Logger, record: logging.LogRecord) -> None:
        records.append(record)
        call_handlers(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", spy)
    settings = OrchestrationSettings(project_dir=tiny_project, retries=0)
    dag_run: Any = build_retrain_dag("intent", settings).test()
    _, err = capfd.readouterr()
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states

    stderr_lines = [line for line in err.splitlines() if line.strip()]
    assert stderr_lines == [], (
        f"{len(stderr_lines)} line(s) on stderr, ERROR lines in a worker's task log:\n"
        + "\n".join(line[:200] for line in stderr_lines[:20])
    )
    errors = [f"{r.name}: {r.getMessage()[:200]}" for r in records if r.levelno >= logging.ERROR]
    assert errors == []

    # Progress, library messages and the preflight table are INFO records instead.
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert any(re.match(r"epoch 1/1: 100% \(\d+/\d+ batches\) in \d+s", m) for m in info)
    assert any(m.startswith("check ") and "status" in m for m in info)  # preflight table
    assert any("Created version '1' of model" in m for m in info)  # MLflow's event message
