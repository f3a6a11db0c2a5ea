"""Suite parameters: the run-time values the reviewed suites in expectations/ refer to.

Things the JSON cannot know (now, the partition's day, known item ids, the label set, the
reference label distribution) are computed here from params and from what is on disk, and
passed to GE as ``{"$PARAMETER": name}`` values. A check whose reference does not exist yet
is listed in ``skipped`` with the reason, so the report can say so.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.core.schemas import EVENT_TYPES, OUT_OF_SCOPE, SHOP_INTENTS
from ml.core.tables import read_text_table
from ml.validation.reading import partition_files

if TYPE_CHECKING:
    from ml.core.config import Params

_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def partition_date(partition_dir: Path) -> str | None:
    """``YYYY-MM-DD`` from a ``date=YYYY-MM-DD`` folder name, or None if it is not one."""
    match = _DATE_DIR.match(partition_dir.name)
    if not match:
        return None
    try:
        datetime.strptime(match.group(1), "%Y-%m-%d")
    except ValueError:
        return None
    return match.group(1)


def dated_partitions(root: Path, dataset: str) -> list[tuple[str, Path]]:
    """``(date, folder)`` of every ``date=...`` partition of ``dataset`` under ``root``, by date."""
    base = root / dataset
    if not base.is_dir():
        return []
    found = [(partition_date(p), p) for p in base.iterdir() if p.is_dir()]
    return sorted((d, p) for d, p in found if d is not None)


def _column_values(partition_dir: Path, column: str) -> list[str]:
    """One column of a partition's files as strings; unreadable files contribute nothing."""
    values: list[str] = []
    for file in partition_files(partition_dir):
        try:
            values_here = read_text_table(file)[column].tolist()  # CSV or Parquet
        except (ValueError, KeyError, UnicodeDecodeError, pd.errors.ParserError, OSError):
            continue  # a broken file fails its own validation; it adds no reference
        values.extend(v for v in values_here if v != "")
    return values


def known_item_ids(params: Params, date: str) -> list[str]:
    """Item ids of validated and landing catalog partitions dated ``date`` or earlier."""
    ids: set[str] = set()
    for root in (params.paths.validated, params.paths.landing):
        for day, folder in dated_partitions(root, "catalog"):
            if day <= date:
                ids.update(_column_values(folder, "item_id"))
    return sorted(ids)


def reference_label_counts(params: Params, exclude_date: str | None) -> dict[str, int]:
    """Label counts over already validated utterances (the partition's own date excluded)."""
    counts: Counter[str] = Counter()
    for day, folder in dated_partitions(params.paths.validated, "utterances"):
        if day != exclude_date:
            counts.update(_column_values(folder, "intent"))
    return dict(counts)


@dataclass
class SuiteInputs:
    """Suite parameters plus the requirements that cannot be met yet (name -> why)."""

    parameters: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reference_counts: dict[str, int] | None = None
    expected_labels: list[str] = field(default_factory=list)


def _known_labels(params: Params, reference: dict[str, int]) -> tuple[list[str] | None, str]:
    cfg = params.validation
    if cfg.labels is not None:
        base, source = set(cfg.labels), "params validation.labels"
    elif reference:
        base, source = set(reference), "labels of already validated utterances"
        if params.ingest.source == "synthetic":
            base |= {*SHOP_INTENTS, OUT_OF_SCOPE}
            source += " and the synthetic shop's intents"
    elif params.ingest.source == "synthetic":
        base, source = {*SHOP_INTENTS, OUT_OF_SCOPE}, "the synthetic shop's intents"
    else:
        return None, "no known label set yet (validation.labels is null, nothing validated)"
    return sorted(base | set(cfg.allowed_new_labels)), f"known labels from {source}"


def suite_inputs(dataset: str, date: str, params: Params, now: datetime) -> SuiteInputs:
    """Everything the ``dataset`` suite(s) need to validate the partition of ``date``."""
    cfg = params.validation
    skew = timedelta(minutes=cfg.max_clock_skew_minutes)
    day_start = pd.Timestamp(date, tz="UTC")
    now_ts = (
        pd.Timestamp(now).tz_convert("UTC")
        if pd.Timestamp(now).tzinfo
        else pd.Timestamp(now, tz="UTC")
    )
    common: dict[str, Any] = {
        "min_rows": cfg.min_rows,
        "partition_start": day_start - skew,
        "partition_end": day_start + timedelta(days=1) + skew,
        "not_after": now_ts + skew,
    }
    if dataset == "catalog":
        # Catalog partitions carry only the items launched that day: a day with none is normal.
        common.update(
            min_rows=0,
            text_min_chars=cfg.text_min_chars,
            text_max_chars=cfg.text_max_chars,
            description_max_chars=cfg.description_max_chars,
        )
        return SuiteInputs(common)
    if dataset == "events":
        items = known_item_ids(params, date)
        common.update(known_item_ids=items, event_types=list(EVENT_TYPES))
        return SuiteInputs(common, notes=[f"{len(items)} known catalog item ids up to {date}"])
    if dataset != "utterances":
        raise ValueError(f"unknown dataset {dataset!r}")
    reference = reference_label_counts(params, exclude_date=date)
    labels, label_note = _known_labels(params, reference)
    common.update(
        text_min_chars=cfg.text_min_chars,
        text_max_chars=cfg.text_max_chars,
        min_per_label=cfg.min_per_label,
        label_tv_tolerance=cfg.label_distribution_tolerance,
    )
    inputs = SuiteInputs(common, notes=[label_note], reference_counts=reference or None)
    if labels is None:
        inputs.skipped["label_set"] = label_note
    else:
        common["known_labels"] = labels
    if reference:
        n = sum(reference.values())
        inputs.notes.append(f"reference label distribution: {n} validated utterances")
        # A label the reference has must keep appearing (allowed new labels need not).
        inputs.expected_labels = sorted(reference)
    else:
        inputs.skipped["reference_distribution"] = (
            "no validated utterances yet: label distribution check skipped"
        )
        if cfg.labels is not None:
            inputs.expected_labels = sorted(cfg.labels)
    return inputs
