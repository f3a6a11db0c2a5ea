"""ml.orchestration.task_runtime.airflow_step: inside an Airflow task, what libraries print to
stderr (which Airflow's supervisor shows as ERROR lines) becomes log records at the right level;
everything is restored afterwards."""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings

import pytest

from ml.core.progress import PROGRESS_ENV
from ml.orchestration.task_runtime import StderrToLog, airflow_step
from ml.stack.tracking import AirflowTask


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    return [(r.name, r.levelno, r.getMessage()) for r in caplog.records]


def test_stderr_lines_become_records_at_their_level(caplog: pytest.LogCaptureFixture) -> None:
    from tqdm import tqdm

    caplog.set_level(logging.INFO)
    real = io.StringIO()
    writer = StderrToLog(real)
    lib = logging.getLogger("somelib.module")
    lib.propagate = False
    lib.addHandler(logging.StreamHandler(writer))  # a library printing through stderr
    try:
        lib.warning("deprecated option")
        for _ in tqdm(range(3), desc="loading", file=writer, mininterval=0):
            pass
        print("a library's own print", file=writer)
        writer.write("no newline yet")
        writer.finish()
        writer.write("after the step\n")
    finally:
        lib.handlers.clear()
        lib.propagate = True
    got = _records(caplog)
    assert ("somelib.module", logging.WARNING, "deprecated option") in got
    bars = [(level, m) for n, level, m in got if n == "stderr.tqdm"]
    assert len(bars) == 1 and bars[0][0] == logging.INFO  # one line when the bar closes
    assert bars[0][1].startswith("loading: 100% 3/3 [00:00<")
    printed = [(level, m) for n, level, m in got if n.startswith("stderr.") and n != "stderr.tqdm"]
    assert printed == [
        (logging.WARNING, "a library's own print"),
        (logging.WARNING, "no newline yet"),
    ]
    assert not any(level >= logging.ERROR for _, level, _ in got)
    assert real.getvalue() == "after the step\n"


def test_airflow_step_sets_and_restores_the_task_environment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    task = AirflowTask("intent_retrain", "manual__2026-12-07T03:00:00+00:00", "train", 2)
    lib = logging.getLogger("transformers.fake_module")
    handler = logging.StreamHandler(sys.stderr)
    root_lib = logging.getLogger("transformers")
    root_lib.addHandler(handler)
    propagate = root_lib.propagate
    root_lib.propagate = False
    stderr_before = sys.stderr
    os.environ.pop(PROGRESS_ENV, None)
    try:
        with airflow_step(task):
            assert os.environ[PROGRESS_ENV] == "log"
            assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
            assert AirflowTask.from_env() == task
            assert isinstance(sys.stderr, StderrToLog)
            assert handler not in root_lib.handlers and root_lib.propagate
            lib.warning("weights not initialised")
            warnings.warn("a library warning", UserWarning, stacklevel=1)
            print("a line printed to stderr", file=sys.stderr)
        assert PROGRESS_ENV not in os.environ
        assert AirflowTask.from_env() is None
        assert sys.stderr is stderr_before
        assert handler in root_lib.handlers and root_lib.propagate is False
    finally:
        root_lib.removeHandler(handler)
        root_lib.propagate = propagate
    got = _records(caplog)
    assert ("transformers.fake_module", logging.WARNING, "weights not initialised") in got
    assert any(n == "py.warnings" and lvl == logging.WARNING for n, lvl, _ in got)
    assert any(
        n.startswith("stderr.") and lvl == logging.WARNING and m == "a line printed to stderr"
        for n, lvl, m in got
    )


def test_warnings_reach_logging_even_when_logging_wrongly_believes_it_captures_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An earlier captureWarnings(True) whose showwarning was later put back by someone else
    (here a catch_warnings block) leaves logging's state stale: the step must still capture."""
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings():
        logging.captureWarnings(True)
    stale_showwarning = warnings.showwarning
    try:
        assert getattr(logging, "_warnings_showwarning", None) is not None  # the stale state
        task = AirflowTask("intent_retrain", "manual__2026-12-07T03:00:00+00:00", "train", 1)
        with airflow_step(task):
            warnings.warn("a warning after a stale capture", UserWarning, stacklevel=1)
        assert warnings.showwarning is stale_showwarning
    finally:
        logging.captureWarnings(False)
    got = _records(caplog)
    assert ("py.warnings", logging.WARNING) in {(n, lvl) for n, lvl, _ in got}
