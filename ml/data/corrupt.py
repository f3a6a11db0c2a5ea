"""Corruption injection: break a landing partition on purpose, to prove the validation gate.

``corrupt_partition`` rewrites ``part-000.csv`` of one partition in place (seeded, so a test or
demo is reproducible) and returns what it did. ``CORRUPTION_KINDS`` maps each kind to the
datasets it applies to; ``python -m ml generate --corrupt KIND`` calls this.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from ml.core.errors import InputError
from ml.core.schemas import DATASETS

PART_FILE = "part-000.csv"
ID_COLUMN = {"catalog": "item_id", "events": "event_id", "utterances": "utterance_id"}
TIME_COLUMN = {"catalog": "first_seen", "events": "timestamp", "utterances": "timestamp"}
TEXT_COLUMN = {"catalog": "title", "utterances": "text"}
# A column whose loss breaks the dataset's contract (and its consumers).
DROP_COLUMN = {"catalog": "price", "events": "item_id", "utterances": "intent"}
NEW_LABEL = "teleport_my_parcel"

CORRUPTION_KINDS: dict[str, tuple[str, ...]] = {
    "missing_column": DATASETS,
    "wrong_type": DATASETS,
    "null_ids": DATASETS,
    "empty_file": DATASETS,
    "duplicate_events": DATASETS,  # duplicated rows, hence duplicated ids (events by name)
    "unknown_label": ("utterances",),
    "future_timestamps": DATASETS,
    "unknown_item_ids": ("events",),
    "truncated_file": DATASETS,
    "label_distribution_shift": ("utterances",),
    "overlong_text": ("catalog", "utterances"),
    "non_utf8": DATASETS,
}

Table = tuple[list[str], list[list[str]]]


def _read(path: Path) -> Table:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    if not rows:
        raise InputError(f"{path}: empty file, nothing to corrupt")
    return rows[0], [r for r in rows[1:] if r]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8"))


def _pick(rng: np.random.Generator, n: int, fraction: float = 0.1) -> list[int]:
    """Some row positions (at least one), sorted."""
    k = min(n, max(1, round(n * fraction)))
    return sorted(int(i) for i in rng.choice(n, size=k, replace=False))


def _set(rows: list[list[str]], col: int, idx: list[int], value: Callable[[int], str]) -> None:
    for i in idx:
        rows[i][col] = value(i)


def _table_kind(path: Path, dataset: str, kind: str, rng: np.random.Generator) -> str:
    """Kinds that edit cells or rows and write valid CSV back."""
    header, rows = _read(path)
    if not rows:
        raise InputError(f"{path}: header only, no rows to corrupt with {kind}")
    col = {name: i for i, name in enumerate(header)}
    n = len(rows)
    if kind == "missing_column":
        drop = col[DROP_COLUMN[dataset]]
        header = [h for i, h in enumerate(header) if i != drop]
        rows = [[v for i, v in enumerate(r) if i != drop] for r in rows]
        _write(path, header, rows)
        return f"dropped column {DROP_COLUMN[dataset]!r}"
    idx = _pick(rng, n)
    if kind == "wrong_type":
        target = "price" if dataset == "catalog" else TIME_COLUMN[dataset]
        _set(
            rows,
            col[target],
            idx,
            lambda i: f"not-a-{'number' if target == 'price' else 'time'}-{i}",
        )
        what = f"put text into {len(idx)} {target!r} values (rows {idx[:5]}...)"
    elif kind == "null_ids":
        _set(rows, col[ID_COLUMN[dataset]], idx, lambda i: "")
        what = f"blanked {len(idx)} {ID_COLUMN[dataset]!r} values"
    elif kind == "duplicate_events":
        rows = rows + [list(rows[i]) for i in idx]
        what = f"appended {len(idx)} duplicate rows (duplicate {ID_COLUMN[dataset]!r})"
    elif kind == "unknown_label":
        relabel = _pick(rng, n, 0.05)
        _set(rows, col["intent"], relabel, lambda i: NEW_LABEL)
        what = f"labelled {len(relabel)} utterances with the unknown intent {NEW_LABEL!r}"
    elif kind == "future_timestamps":
        future = (datetime.now(UTC) + timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
        _set(rows, col[TIME_COLUMN[dataset]], idx, lambda i: future)
        what = f"moved {len(idx)} {TIME_COLUMN[dataset]!r} values to {future}"
    elif kind == "unknown_item_ids":
        _set(rows, col["item_id"], idx, lambda i: f"GHOST-{i:06d}")
        what = f"pointed {len(idx)} events at item ids missing from the catalog (GHOST-...)"
    elif kind == "overlong_text":
        column = TEXT_COLUMN[dataset]
        _set(rows, col[column], idx, lambda i: (rows[i][col[column]] + " ") * 200)
        what = f"made {len(idx)} {column!r} values about 200 times longer"
    elif kind == "label_distribution_shift":
        labels = sorted({r[col["intent"]] for r in rows})
        dominant = labels[int(rng.integers(len(labels)))]
        _set(rows, col["intent"], _pick(rng, n, 0.6), lambda i: dominant)
        what = f"relabelled 60% of utterances as {dominant!r}"
    else:
        raise AssertionError(kind)
    _write(path, header, rows)
    return what


def _truncate(path: Path, rng: np.random.Generator) -> str:
    """Cut the file inside a line in its second half, as an interrupted upload would."""
    text = path.read_text(encoding="utf-8")
    starts = [i + 1 for i, ch in enumerate(text) if ch == "\n"][:-1]  # line starts, not EOF
    candidates = [s for s in starts if s > len(text) // 2] or starts
    if not candidates:
        raise InputError(f"{path}: too short to truncate")
    start = candidates[int(rng.integers(len(candidates)))]
    end = text.index("\n", start)
    if end - start < 2:
        raise InputError(f"{path}: line at offset {start} too short to cut")
    cut = start + 1 + int(rng.integers(end - start - 1))  # strictly inside the line
    path.write_bytes(text[:cut].encode("utf-8"))
    return f"truncated to {len(text[:cut].encode('utf-8'))} bytes, mid-row"


def _non_utf8(path: Path, rng: np.random.Generator) -> str:
    """Insert a Latin-1 byte into a row in the second half of the file."""
    data = path.read_bytes()
    lines = [i + 1 for i, b in enumerate(data) if b == 0x0A][:-1]
    candidates = [s for s in lines if s > len(data) // 2] or lines
    if not candidates:
        raise InputError(f"{path}: no data row to corrupt")
    offset = candidates[int(rng.integers(len(candidates)))] + 1
    path.write_bytes(data[:offset] + b"\xe9" + data[offset:])
    return f"inserted byte 0xe9 (Latin-1 'é') at byte offset {offset}"


def corrupt_partition(partition_dir: Path, dataset: str, kind: str, seed: int) -> str:
    """Corrupt ``partition_dir/part-000.csv`` in place with ``kind``; returns what was done."""
    if kind not in CORRUPTION_KINDS:
        raise InputError(
            f"unknown corruption kind {kind!r}; choose from {sorted(CORRUPTION_KINDS)}"
        )
    if dataset not in CORRUPTION_KINDS[kind]:
        raise InputError(
            f"corruption {kind!r} applies to {list(CORRUPTION_KINDS[kind])}, not {dataset!r}"
        )
    path = Path(partition_dir) / PART_FILE
    if not path.is_file():
        raise InputError(f"{path}: partition file not found")
    rng = np.random.default_rng(seed)
    if kind == "empty_file":
        path.write_bytes(b"")
        what = "emptied the file (0 bytes)"
    elif kind == "truncated_file":
        what = _truncate(path, rng)
    elif kind == "non_utf8":
        what = _non_utf8(path, rng)
    else:
        what = _table_kind(path, dataset, kind, rng)
    return f"{kind} on {dataset} {Path(partition_dir).name}: {what}"
