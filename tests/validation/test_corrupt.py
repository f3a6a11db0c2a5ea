"""Corruption kinds change the file the way they say (the gate tests prove they are caught)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ml.core.errors import InputError
from ml.data.corrupt import CORRUPTION_KINDS, corrupt_partition

from .conftest import make_params, write_world


@pytest.fixture
def world(tmp_path: Path) -> Path:
    params = make_params(tmp_path)
    write_world(params, days=1)
    return params.paths.landing


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(encoding="utf-8", newline="")))


def test_at_least_twelve_kinds() -> None:
    assert len(CORRUPTION_KINDS) >= 12


@pytest.mark.parametrize(
    ("kind", "dataset"),
    [(k, ds) for k, datasets in CORRUPTION_KINDS.items() for ds in datasets],
)
def test_every_kind_changes_the_file_deterministically(
    world: Path, tmp_path: Path, kind: str, dataset: str
) -> None:
    folder = world / dataset / "date=2026-11-01"
    original = (folder / "part-000.csv").read_bytes()
    twin = tmp_path / "twin" / dataset / "date=2026-11-01"
    twin.mkdir(parents=True)
    (twin / "part-000.csv").write_bytes(original)
    described = corrupt_partition(folder, dataset, kind, seed=3)
    assert described.startswith(f"{kind} on {dataset} date=2026-11-01")
    after = (folder / "part-000.csv").read_bytes()
    assert after != original
    # Same seed, same damage (future_timestamps depends on the clock, hence by the minute).
    assert (
        corrupt_partition(twin, dataset, kind, seed=3) == described or kind == "future_timestamps"
    )
    if kind not in {"future_timestamps"}:
        assert (twin / "part-000.csv").read_bytes() == after


def test_specific_damage(world: Path) -> None:
    events = world / "events" / "date=2026-11-01"
    corrupt_partition(events, "events", "duplicate_events", seed=1)
    ids = [r[0] for r in _rows(events / "part-000.csv")[1:]]
    assert len(ids) > len(set(ids))
    utterances = world / "utterances" / "date=2026-11-01"
    corrupt_partition(utterances, "utterances", "missing_column", seed=1)
    assert _rows(utterances / "part-000.csv")[0] == ["utterance_id", "text", "timestamp"]
    catalog = world / "catalog" / "date=2026-11-01"
    corrupt_partition(catalog, "catalog", "truncated_file", seed=1)
    assert not (catalog / "part-000.csv").read_bytes().endswith(b"\n")


def test_bad_requests_are_clear(world: Path) -> None:
    with pytest.raises(InputError, match="unknown corruption kind 'melt'"):
        corrupt_partition(world / "events" / "date=2026-11-01", "events", "melt", seed=0)
    with pytest.raises(InputError, match=r"applies to \['utterances'\], not 'events'"):
        corrupt_partition(world / "events" / "date=2026-11-01", "events", "unknown_label", seed=0)
    with pytest.raises(InputError, match="partition file not found"):
        corrupt_partition(world / "events" / "date=2030-01-01", "events", "null_ids", seed=0)
