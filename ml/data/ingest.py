"""Ingest: put new data into the landing area (``paths.landing``), one partition per day.

The landing area is the inbox of the validation gate. Sources:
synthetic (the embedded shop generator), intent_file (an external intent data set) and
directory (partitions the shop drops somewhere else, copied in once).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import ConfigError, InputError
from ml.core.schemas import DATASETS

if TYPE_CHECKING:
    from ml.core.config import Params

log = logging.getLogger(__name__)


def list_partitions(root: Path, dataset: str) -> list[Path]:
    """``root/<dataset>/date=*`` folders, oldest first."""
    base = root / dataset
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("date="))


def copy_new_partitions(source: Path, params: Params) -> dict[str, Any]:
    """Copy partitions from ``source`` that landing, validated and quarantine have not seen."""
    if not source.is_dir():
        raise InputError(f"ingest.directory {source} does not exist or is not a folder")
    copied: list[str] = []
    skipped: list[str] = []
    for dataset in DATASETS:
        for partition in list_partitions(source, dataset):
            rel = Path(dataset) / partition.name
            seen = [
                root / rel
                for root in (params.paths.landing, params.paths.validated, params.paths.quarantine)
                if (root / rel).exists()
            ]
            if seen:
                skipped.append(f"{rel} (already in {seen[0].parent.parent})")
                continue
            shutil.copytree(partition, params.paths.landing / rel)
            copied.append(str(rel))
    return {"source": str(source), "copied": copied, "skipped": skipped}


def ingest(
    params: Params, *, first_day: int | None = None, n_days: int | None = None
) -> dict[str, Any]:
    """Bring new data into the landing area as configured by ``params.ingest``."""
    cfg = params.ingest
    landing = params.paths.landing
    landing.mkdir(parents=True, exist_ok=True)
    if cfg.source == "synthetic":
        from ml.data.synthetic import generate_world

        meta = generate_world(params.generator, landing, first_day=first_day, n_days=n_days)
        return {"source": "synthetic", **meta}
    if cfg.source == "intent_file":
        if cfg.intent_file is None:
            raise ConfigError("ingest.source is intent_file but ingest.intent_file is not set")
        from ml.data.adapters import intent_frame_to_landing, read_table

        return intent_frame_to_landing(
            read_table(cfg.intent_file),
            landing,
            text_column=cfg.text_column,
            label_column=cfg.label_column,
            date=cfg.partition_date,
            source_name=cfg.intent_file.name,
            sample=cfg.sample,
            seed=params.seed,
        )
    if cfg.directory is None:
        raise ConfigError("ingest.source is directory but ingest.directory is not set")
    return copy_new_partitions(cfg.directory, params)
