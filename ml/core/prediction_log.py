"""The prediction log: one row per prediction the online server made, as Parquet partitions.

Layout (like the landing area, ml/core/tables.py): ``<root>/<family>/date=YYYY-MM-DD/
part-<utc time>-<random>.parquet``. Columns: PREDICTION_LOG_COLUMNS; ``role`` is
``champion`` (the answer the caller got) or ``shadow`` (the challenger's prediction of the same
request, same ``request_id``). ``input`` and ``output`` are JSON text so both families share one
schema. It lives in core so that the gate (ml.release) and monitoring can read what serving
wrote without importing serving.

Writes never block a request: :meth:`PredictionLogWriter.append` only adds to a buffer; a
background thread writes the buffer every ``flush_interval_s`` (sooner when it grows large) and
on :meth:`~PredictionLogWriter.close`. Each flush writes new files (temporary name, then an atomic
rename), so a reader never sees half a file.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

PREDICTION_LOG_COLUMNS = (
    "request_id",
    "ts",
    "family",
    "model_name",
    "model_version",
    "role",
    "input",
    "output",
    "latency_ms",
)
ROLES = ("champion", "shadow")


@dataclass(frozen=True)
class PredictionRecord:
    request_id: str
    family: str
    model_name: str
    model_version: str
    role: str
    input: str  # JSON text
    output: str  # JSON text
    latency_ms: float
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))


def _arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("family", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("role", pa.string()),
            ("input", pa.string()),
            ("output", pa.string()),
            ("latency_ms", pa.float64()),
        ]
    )


def write_partitions(root: Path, records: Iterable[PredictionRecord]) -> list[Path]:
    """Write ``records`` as new part files, one per (family, UTC date); returns the files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    groups: dict[tuple[str, date], list[PredictionRecord]] = {}
    for record in records:
        groups.setdefault((record.family, record.ts.astimezone(UTC).date()), []).append(record)
    schema = _arrow_schema()
    written = []
    for (family, day), rows in sorted(groups.items()):
        folder = Path(root) / family / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        columns = {col: [asdict(r)[col] for r in rows] for col in PREDICTION_LOG_COLUMNS}
        table = pa.Table.from_pydict(columns, schema=schema)
        # A dot-name that no part-*.parquet glob matches, renamed in one step when complete.
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)
        written.append(folder / name)
    return written


def read_prediction_log(
    root: str | Path,
    family: str | None = None,
    *,
    since: date | None = None,
    until: date | None = None,
) -> pd.DataFrame:
    """Every logged prediction under ``root`` (one family, or all), dates ``since``..``until``
    inclusive, oldest first; an empty frame with the log's columns when there is none."""
    import pyarrow.parquet as pq

    root = Path(root)
    families = [family] if family else sorted(p.name for p in root.glob("*") if p.is_dir())
    tables = []
    for fam in families:
        for folder in sorted((root / fam).glob("date=*")):
            try:
                day = date.fromisoformat(folder.name.removeprefix("date="))
            except ValueError:
                continue  # not a partition folder of ours
            if (since and day < since) or (until and day > until):
                continue
            tables += [
                pq.read_table(f, schema=_arrow_schema()) for f in folder.glob("part-*.parquet")
            ]
    if not tables:
        return _arrow_schema().empty_table().to_pandas()
    import pyarrow as pa

    frame = pa.concat_tables(tables).to_pandas()
    return frame.sort_values(["ts", "request_id", "role"], kind="stable").reset_index(drop=True)


class PredictionLogWriter:
    """Buffers records in memory and writes them from a background thread.

    ``append`` is a list append under a lock (safe from the event loop and from worker
    threads); ``close`` stops the thread and writes what is left. A failed write is logged and
    its rows dropped (the log must never take the server down); ``dropped`` counts them.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        flush_interval_s: float = 2.0,
        max_buffer: int = 5000,
        prepare: Callable[[list[PredictionRecord]], list[PredictionRecord]] | None = None,
    ) -> None:
        self.root = Path(root)
        # Runs in the writer thread before rows are written (personal data scrubbed there, off
        # the request path); when it fails the rows are dropped, never written as they came.
        self.prepare = prepare
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.written = 0
        self.dropped = 0
        self._buffer: list[PredictionRecord] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="prediction-log-writer", daemon=True
        )
        self._thread.start()

    def append(self, records: Iterable[PredictionRecord]) -> None:
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("prediction log writer is closed")
            self._buffer.extend(records)
            big = len(self._buffer) >= self.max_buffer
        if big:
            self._wake.set()

    def flush(self) -> int:
        """Write what is buffered now (in the calling thread); returns the number of rows."""
        with self._lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return 0
        try:
            write_partitions(self.root, self.prepare(rows) if self.prepare else rows)
        except Exception:  # disk full, permissions: logged, never raised into a request
            log.exception(
                "prediction log: %d rows could not be written to %s", len(rows), self.root
            )
            self.dropped += len(rows)
            return 0
        self.written += len(rows)
        return len(rows)

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        """Stop the background thread and write every buffered row."""
        with self._lock:
            self._closed.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()
