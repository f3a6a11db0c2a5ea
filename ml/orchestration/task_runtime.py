"""How a step runs inside an Airflow task: task logs that read right, and the task's identity.

Airflow 3's supervisor forwards whatever the task process writes to stderr to the task log at
ERROR (airflow/sdk/execution_time/supervisor.py: the ``task.stderr`` forwarder has
``log_level=logging.ERROR``; stdout is INFO), while logging records keep their level. Libraries
use stderr for progress bars (tqdm, MLflow's "Downloading artifacts", transformers' "Loading
weights") and for informational messages (MLflow's logger and event prints), so a healthy task
log was mostly red. :func:`airflow_step` wraps one step (``ml.orchestration.runtime.run_ml_step``):

* ``SHOPFLOW_PROGRESS=log``: the project's loops log their progress (:mod:`ml.core.progress`)
  and reports such as the preflight table are INFO records;
* library progress bars off: ``TQDM_DISABLE`` (tqdm imported later, child processes),
  ``HF_HUB_DISABLE_PROGRESS_BARS`` and transformers' switch, and
  ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false``;
* warnings go through logging (``logging.captureWarnings``): WARNING records;
* library loggers that print to stderr themselves (transformers, huggingface_hub, ...)
  propagate to the task's logging instead;
* what is still written to ``sys.stderr`` becomes log records (:class:`StderrToLog`): a logging
  handler's line keeps its record's level and logger (MLflow's handler writes through
  ``sys.stderr``), MLflow's event messages and tqdm bars are INFO, anything else WARNING;
* ``SHOPFLOW_AIRFLOW_*``: the task instance, for MLflow run names and tags (ml.stack.tracking).

Everything is restored afterwards (``dag.test()`` runs the tasks in the caller's process). In a
terminal nothing of this applies: ``python -m ml`` keeps its tqdm bars and stderr messages.
Writes to file descriptor 2 from C code bypass ``sys.stderr`` and still read as ERROR.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

from ml.core.progress import DEFAULT_INTERVAL_S, PROGRESS_ENV
from ml.stack.tracking import AirflowTask

# Loggers of libraries that attach their own stderr handler (and may not propagate).
LIBRARY_LOGGERS = ("transformers", "huggingface_hub", "sentence_transformers", "datasets")

TASK_ENV = {
    PROGRESS_ENV: "log",
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

# What wrote to stderr (top-level package of the writing frame) -> level, when not a logging
# handler: MLflow's event prints ("Created version '3' of model ...") and progress bars are
# information; anything else printed to stderr is worth a look, but is not an error.
_INFO_SOURCES = {"mlflow", "tqdm"}
_BAR = re.compile(r"\|[^|]*\|")  # tqdm's bar between the percentage and the counts


@contextlib.contextmanager
def airflow_step(task: AirflowTask | None = None) -> Iterator[None]:
    """Run one step inside an Airflow task with log-friendly output (module docstring) and
    ``task`` in the environment for the MLflow runs it creates."""
    env = dict(TASK_ENV)
    if task is not None:
        env.update(task.env())
    with contextlib.ExitStack() as stack:
        # Library switches first: they are turned back on after the environment is restored
        # (huggingface_hub refuses to while HF_HUB_DISABLE_PROGRESS_BARS is set).
        stack.callback(_library_progress_bars_off())
        stack.enter_context(_environ(env))
        stack.callback(_warnings_to_logging())
        stack.callback(_library_loggers_to_root())
        stack.enter_context(_stderr_to_log())
        yield


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _library_progress_bars_off() -> Callable[[], None]:
    """Turn off the bars of libraries already imported (the environment variables only reach
    those imported later); returns the undo."""
    undo: list[Callable[[], None]] = []
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None and transformers_logging.is_progress_bar_enabled():
        transformers_logging.disable_progress_bar()
        undo.append(transformers_logging.enable_progress_bar)
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        undo.append(hub.enable_progress_bars)

    def restore() -> None:
        for step in reversed(undo):
            with contextlib.suppress(Exception):
                step()

    return restore


def _warnings_to_logging() -> Callable[[], None]:
    """``logging.captureWarnings(True)`` for the step; returns the undo.

    captureWarnings(True) does nothing when logging believes it already captures: a library
    (or an earlier task in this process) called it, then something else (a
    ``warnings.catch_warnings`` block, a test runner) put its own ``warnings.showwarning`` back.
    So the stale state is cleared first, and the undo restores exactly what was there."""
    import warnings

    saved_state = getattr(logging, "_warnings_showwarning", None)
    shown_by = warnings.showwarning
    logging._warnings_showwarning = None  # type: ignore[attr-defined]
    logging.captureWarnings(True)

    def restore() -> None:
        warnings.showwarning = shown_by
        logging._warnings_showwarning = saved_state  # type: ignore[attr-defined]

    return restore


def _writes_to_stderr(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return stream is not None and (stream is sys.stderr or stream is sys.__stderr__)


def _library_loggers_to_root() -> Callable[[], None]:
    """Loggers that print to stderr through their own handler (transformers attaches one and
    stops propagation) send their records to the task's logging instead; returns the undo."""
    changed: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        library = name.split(".")[0] in LIBRARY_LOGGERS
        detach: list[logging.Handler] = [
            h
            for h in logger.handlers
            if type(h) is logging.StreamHandler and (library or _writes_to_stderr(h))
        ]
        if not detach:
            continue
        changed.append((logger, detach, logger.propagate))
        for handler in detach:
            logger.removeHandler(handler)
        logger.propagate = True

    def restore() -> None:
        for logger, handlers, propagate in changed:
            for handler in handlers:
                logger.addHandler(handler)
            logger.propagate = propagate

    return restore


@contextlib.contextmanager
def _stderr_to_log() -> Iterator[StderrToLog]:
    writer = StderrToLog(sys.stderr)
    sys.stderr = writer
    try:
        yield writer
    finally:
        writer.finish()
        if sys.stderr is writer:
            sys.stderr = writer.stream


def _emitting_record(frame: FrameType | None, depth: int = 4) -> logging.LogRecord | None:
    """The record a logging handler is writing, when the write comes from one (directly or
    through a stream wrapper such as MLflow's); not logging's last resort (no handler at all
    took the record: it must reach stderr)."""
    while frame is not None and depth > 0:
        if frame.f_code.co_name == "emit" and frame.f_globals.get("__name__") == "logging":
            record = frame.f_locals.get("record")
            if isinstance(record, logging.LogRecord):
                return None if frame.f_locals.get("self") is logging.lastResort else record
        frame, depth = frame.f_back, depth - 1
    return None


def _propagates(name: str) -> bool:
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None and logger.parent is not None:
        if not logger.propagate:
            return False
        logger = logger.parent
    return logger is not None and name != logger.name


class StderrToLog(io.TextIOBase):
    """``sys.stderr`` while a step runs in a task: lines become log records (module docstring).

    Carriage returns overwrite the current line as on a terminal, so a tqdm bar becomes one
    INFO line when it finishes (and one every 30 s while it runs). Writes made while this
    writer is logging (a handler that itself writes to stderr) and after :meth:`finish` go to
    the real stderr.
    """

    def __init__(self, stream: TextIO, interval_s: float = DEFAULT_INTERVAL_S):
        super().__init__()
        self.stream = stream
        self.interval_s = interval_s
        self._active = True
        self._lock = threading.RLock()
        self._local = threading.local()
        self._line = ""
        self._source = ""
        self._last_progress = time.monotonic()

    # -- the text-stream interface libraries use
    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.stream, "encoding", None) or "utf-8")

    def __getattr__(self, name: str) -> Any:  # e.g. .buffer: bytes go to the real stderr
        if name == "stream":
            raise AttributeError(name)
        return getattr(self.stream, name)

    def flush(self) -> None:
        if not self._active:
            self.stream.flush()

    def write(self, text: str) -> int:
        if not self._active or getattr(self._local, "busy", False):
            return self.stream.write(text)
        caller = sys._getframe(1)
        record = _emitting_record(caller)
        if record is not None:
            self._handle(record)
            return len(text)
        source = str(caller.f_globals.get("__name__", "")).split(".")[0] or "stderr"
        with self._lock:
            for part in re.split(r"(\r|\n)", text):
                if part == "\n":
                    self._emit_line()
                elif part == "\r":
                    self._carriage_return()
                elif part:
                    if not self._line:
                        self._source = source
                    self._line += part
        return len(text)

    def finish(self) -> None:
        """End of the step: log what is left of an unfinished line; later writes pass through."""
        with self._lock:
            self._emit_line()
            self._active = False

    # -- internals
    def _carriage_return(self) -> None:
        # A progress bar redraws its line: log it now and then, not every redraw.
        now = time.monotonic()
        due = now - self._last_progress >= self.interval_s
        if self._source == "tqdm" and self._line.strip() and due:
            self._last_progress = now
            self._emit_line()
        self._line = ""

    def _emit_line(self) -> None:
        text, source = self._line.strip(), self._source
        self._line = ""
        if not text:
            return
        if source == "tqdm":
            text = " ".join(_BAR.sub(" ", text).split())
        level = logging.INFO if source in _INFO_SOURCES else logging.WARNING
        self._log(lambda: logging.getLogger(f"stderr.{source}").log(level, "%s", text))

    def _handle(self, record: logging.LogRecord) -> None:
        root = logging.getLogger()
        if root.isEnabledFor(record.levelno) and not _propagates(record.name):
            # To the task's handlers (on the root logger), not back to the library's own; a
            # record that propagates reaches them anyway.
            self._log(lambda: root.handle(record))

    def _log(self, emit: Callable[[], None]) -> None:
        self._local.busy = True
        try:
            emit()
        finally:
            self._local.busy = False
