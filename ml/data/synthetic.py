"""The synthetic shop: seeded, deterministic daily landing partitions (the embedded default data).

Writes ``<out>/<dataset>/date=YYYY-MM-DD/part-000.csv`` for catalog, events and utterances in
the columns of :mod:`ml.core.schemas`. The world (catalog, bundles, users and their tastes) depends on
the seed and sizes only and each day has its own random streams seeded from (seed, day), so
generating day 3 alone writes the same bytes as day 3 of a full run: the Airflow demo can
produce "the next day" later.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from ml.core.progress import progress
from ml.core.config.data import GeneratorConfig
from ml.data.shop_events import generate_events
from ml.data.utterances import Utterance, generate_utterances
from ml.data.world import Item, World, build_world, new_items_on_day
from ml.core.errors import ConfigError
from ml.core.schemas import CATALOG_COLUMNS, EVENT_COLUMNS, UTTERANCE_COLUMNS, partition_name

log = logging.getLogger(__name__)
PART_FILE = "part-000.csv"

__all__ = [
    "build_world",
    "day_date",
    "generate_day",
    "generate_utterances",
    "generate_world",
    "partition_path",
]


def day_date(cfg: GeneratorConfig, day: int) -> str:
    """``YYYY-MM-DD`` of day index ``day`` (0 = cfg.start_date)."""
    try:
        start = date.fromisoformat(cfg.start_date)
    except ValueError as exc:
        raise ConfigError(f"generator.start_date {cfg.start_date!r} is not YYYY-MM-DD") from exc
    return (start + timedelta(days=day)).isoformat()


def partition_path(out_dir: Path, dataset: str, day_iso: str) -> Path:
    return Path(out_dir) / dataset / partition_name(day_iso) / PART_FILE


def _timestamp(day_iso: str, second: int) -> str:
    moment = datetime.fromisoformat(day_iso).replace(tzinfo=UTC) + timedelta(seconds=second)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """UTF-8 CSV with a header, ``\\n`` line ends and minimal quoting: byte-stable output."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode("utf-8"))


def _catalog_rows(
    world: World, items: list[Item], day_iso_of: dict[int, str]
) -> list[tuple[Any, ...]]:
    return [
        (
            it.item_id,
            it.title,
            world.categories[it.category],
            it.brand,
            f"{it.price:.2f}",
            it.description,
            day_iso_of[it.first_day],
        )
        for it in items
    ]


def generate_day(world: World, cfg: GeneratorConfig, out_dir: Path, day: int) -> dict[str, Any]:
    """Write the three partitions of one day; returns {dataset: {"path", "rows"}}."""
    day_iso = day_date(cfg, day)
    launched = world.items if day == 0 else []
    launched = [*launched, *new_items_on_day(world, cfg, day)]
    catalog = _catalog_rows(world, launched, {day: day_iso, 0: day_date(cfg, 0)})

    _, events = generate_events(world, cfg, day)
    session_ids: dict[int, str] = {}
    event_rows = []
    for n, ev in enumerate(events):
        # Session ids are numbered by first appearance, so they read in time order too.
        sid = session_ids.setdefault(ev.session, f"S{day:03d}-{len(session_ids) + 1:05d}")
        event_rows.append(
            (
                f"E{day:03d}-{n + 1:06d}",
                ev.user,
                sid,
                ev.item_id,
                ev.event_type,
                _timestamp(day_iso, ev.second),
            )
        )

    utterances: list[Utterance] = generate_utterances(world, cfg, day)
    utterance_rows = [
        (f"T{day:03d}-{n + 1:05d}", u.text, u.intent, _timestamp(day_iso, u.second))
        for n, u in enumerate(utterances)
    ]

    written: dict[str, Any] = {}
    for dataset, columns, rows in (
        ("catalog", CATALOG_COLUMNS, catalog),
        ("events", EVENT_COLUMNS, event_rows),
        ("utterances", UTTERANCE_COLUMNS, utterance_rows),
    ):
        path = partition_path(out_dir, dataset, day_iso)
        _write_csv(path, columns, rows)
        written[dataset] = {"path": str(path), "rows": len(rows)}
    return written


def generate_world(
    cfg: GeneratorConfig,
    out_dir: Path,
    *,
    first_day: int | None = None,
    n_days: int | None = None,
) -> dict[str, Any]:
    """Write days ``first_day .. first_day + n_days - 1`` (default: all ``cfg.days``).

    Returns the paths written and row counts per dataset and date.
    """
    first_day = cfg.first_day if first_day is None else first_day
    if first_day < 0:
        raise ConfigError(f"first_day must be >= 0, got {first_day}")
    n_days = cfg.days if n_days is None else n_days
    if n_days < 1:
        raise ConfigError(f"number of days must be >= 1, got {n_days}")
    out_dir = Path(out_dir)
    world = build_world(cfg)
    days = range(first_day, first_day + n_days)
    paths: list[str] = []
    rows: dict[str, dict[str, int]] = {"catalog": {}, "events": {}, "utterances": {}}
    for day in progress(days, desc="synthetic days", unit="day", disable=len(days) < 2):
        day_iso = day_date(cfg, day)
        for dataset, info in generate_day(world, cfg, out_dir, day).items():
            paths.append(info["path"])
            rows[dataset][day_iso] = info["rows"]
    log.info("synthetic shop: %d days written under %s", n_days, out_dir)
    return {
        "out_dir": str(out_dir),
        "seed": cfg.seed,
        "dates": [day_date(cfg, d) for d in days],
        "paths": paths,
        "rows": rows,
    }
