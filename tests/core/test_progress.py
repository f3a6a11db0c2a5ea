"""Progress of long loops: tqdm bars in a terminal, INFO lines in a task log."""

from __future__ import annotations

import logging

import pytest

from ml.core import progress as p


def test_terminal_keeps_tqdm_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm.auto import tqdm

    monkeypatch.delenv(p.PROGRESS_ENV, raising=False)
    bar = p.progress(range(3), desc="epoch 1/2", unit="batch", disable=True)
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2]


def test_task_mode_logs_progress_lines(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(p.PROGRESS_ENV, "log")
    monkeypatch.setenv(p.INTERVAL_ENV, "0")  # a line per step, to see the format
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("test.progress")
    bar = p.progress(range(5), desc="epoch 1/4", unit="batch", logger=logger)
    assert isinstance(bar, p.LogProgress)
    for i in bar:
        bar.set_postfix(loss=f"{1.0 / (i + 1):.2f}")
    lines = [r.getMessage() for r in caplog.records if r.name == "test.progress"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "test.progress")
    assert lines[1].startswith("epoch 1/4: 40% (2/5 batches), ")
    assert lines[1].endswith("loss=0.50")
    assert lines[-1].startswith("epoch 1/4: 100% (5/5 batches) in ")
    assert lines[-1].endswith("loss=0.20")


def test_task_mode_logs_at_an_interval_and_once_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bar = p.LogProgress(iter(range(500)), desc="encoding", unit="item", interval_s=3600)
    assert sum(1 for _ in bar) == 500
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("encoding: 500 items in ")  # no total known
    quiet = p.LogProgress(range(3), desc="x", disable=True)
    assert list(quiet) == [0, 1, 2] and len(caplog.records) == 1


def test_report_is_stderr_in_a_terminal_and_a_record_in_a_task(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.delenv(p.PROGRESS_ENV, raising=False)
    p.report("check  status\nmlflow ok")
    assert capsys.readouterr().err == "check  status\nmlflow ok\n"
    assert not caplog.records
    monkeypatch.setenv(p.PROGRESS_ENV, "log")
    p.report("check  status\nmlflow ok")
    assert capsys.readouterr().err == ""
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "check  status\nmlflow ok")
    ]
