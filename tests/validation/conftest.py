"""Small synthetic worlds for the validation gate (the real generator, tiny sizes)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ml.core.config import Params, PathsConfig
from ml.core.config.data import DriftConfig, GeneratorConfig
from ml.core.config.validation import ValidationConfig
from ml.data.synthetic import generate_world

# Fixed "now" a few weeks after the generator's start date (2026-11-01).
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def small_generator(days: int) -> GeneratorConfig:
    # A few new items a day, so events must be checked against later catalog partitions too.
    return GeneratorConfig(
        n_items=60,
        n_users=40,
        utterances_per_day=300,
        days=days,
        drift=DriftConfig(new_items=3, start_day=1),
    )


def make_params(root: Path, *, data_docs: bool = False) -> Params:
    """Params whose every path lies under ``root``."""
    paths = PathsConfig(
        landing=root / "landing",
        validated=root / "validated",
        quarantine=root / "quarantine",
        processed=root / "processed",
        models=root / "models",
        reports=root / "reports",
    )
    return Params(paths=paths, validation=ValidationConfig(data_docs=data_docs))


def write_world(params: Params, days: int) -> dict:
    return generate_world(small_generator(days), params.paths.landing)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def now() -> datetime:
    return NOW
