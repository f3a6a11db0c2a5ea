"""Progress of the project's long loops: tqdm bars in a terminal, log lines in a task log.

A person running ``python -m ml ...`` (or ``dvc repro``) sees tqdm bars. Inside an Airflow task
(``ml.orchestration.task_runtime.airflow_step`` sets ``SHOPFLOW_PROGRESS=log``) a bar would be
hundreds of carriage-return updates on stderr, which Airflow shows as ERROR lines; there the same
loop logs ``epoch 1/4: 40% (200/500 batches), 12s, loss=0.4123`` at INFO every ``interval_s``
seconds and once when it ends.

Plain Python at import time (tqdm is imported on use): every stage may import it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# "log": progress and human-readable reports go to logging (set inside Airflow tasks);
# anything else (unset): tqdm bars and reports on stderr.
PROGRESS_ENV = "SHOPFLOW_PROGRESS"
# Seconds between two progress lines of one loop in log mode.
INTERVAL_ENV = "SHOPFLOW_PROGRESS_INTERVAL_S"
DEFAULT_INTERVAL_S = 30.0

log = logging.getLogger(__name__)


def logs_progress() -> bool:
    """Whether progress and reports go to logging (inside an Airflow task) instead of stderr."""
    return os.environ.get(PROGRESS_ENV, "").strip().lower() == "log"


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("ch", "sh", "s", "x")) else "s")


class LogProgress(Generic[T]):
    """The part of tqdm's interface the project uses (iterate, ``set_postfix``, ``update``,
    ``close``), reporting to a logger at INFO: every ``interval_s`` seconds and at the end."""

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        desc: str = "",
        total: int | None = None,
        unit: str = "it",
        disable: bool = False,
        logger: logging.Logger | None = None,
        interval_s: float | None = None,
    ):
        self.iterable = iterable
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        self.total = total
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self.n = 0
        self.log = logger or log
        self.interval_s = _interval() if interval_s is None else interval_s
        self._postfix = ""
        self._start = self._last = time.monotonic()
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("LogProgress without an iterable is not iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LogProgress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self._last >= self.interval_s:
            self._last = now
            self.log.info("%s", self.line(now))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable:
            self.log.info("%s", self.line(time.monotonic(), final=True))

    def line(self, now: float, final: bool = False) -> str:
        """``desc: 40% (200/500 batches), 12s[, postfix]``; ``in 31s`` on the last line."""
        elapsed = now - self._start
        if self.total:
            done = f"{100 * self.n // self.total}% ({self.n}/{self.total} {_plural(self.unit)})"
        else:
            done = f"{self.n} {_plural(self.unit)}"
        text = f"{self.desc}: {done}" if self.desc else done
        text += f" in {elapsed:.0f}s" if final else f", {elapsed:.0f}s"
        return text + (f", {self._postfix}" if self._postfix else "")


def progress(
    iterable: Iterable[T],
    *,
    desc: str = "",
    total: int | None = None,
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    logger: logging.Logger | None = None,
) -> Any:
    """``tqdm(iterable, ...)`` in a terminal; a :class:`LogProgress` inside an Airflow task."""
    if logs_progress():
        return LogProgress(
            iterable, desc=desc, total=total, unit=unit, disable=disable, logger=logger
        )
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=leave)


def report(text: str, logger: logging.Logger | None = None) -> None:
    """A human-readable block (e.g. the preflight table): stderr in a terminal, one INFO
    record inside an Airflow task (where stderr lines read as errors)."""
    if logs_progress():
        (logger or log).info("%s", text)
    else:
        print(text, file=sys.stderr)
