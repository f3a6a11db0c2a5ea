"""Ingest: put new data into the landing area (``paths.landing``), one partition per day.

The landing area is the inbox of the validation gate. Sources:
synthetic (the embedded shop generator), intent_file (an external intent data set, with its
official test/val split if it has one: ``test_file``, ``val_file``, ``split_column``) and
directory (partitions the shop drops somewhere else, copied in once) and s3 (partitions the
shop uploads to a bucket, each new or re-uploaded object downloaded once: ml.data.s3_landing).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import ConfigError, InputError
from ml.core.schemas import DATASETS

if TYPE_CHECKING:
    from ml.core.config import IngestConfig, Params

log = logging.getLogger(__name__)

# Settings that give an intent_file data set's official split (meaningless for other sources).
OFFICIAL_SPLIT_KEYS = ("test_file", "val_file", "split_column")


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


def ingest_intent_file(cfg: IngestConfig, landing: Path, *, seed: int) -> dict[str, Any]:
    """``ingest.intent_file`` (plus its official test/val files or split column) as one
    utterances landing partition; official splits travel as its ``split`` column."""
    if cfg.intent_file is None:
        raise ConfigError("ingest.source is intent_file but ingest.intent_file is not set")
    from ml.data.adapters import (
        OFFICIAL_SPLIT_KEY,
        intent_frame_to_landing,
        read_table,
        with_official_splits,
    )

    df = read_table(cfg.intent_file)
    split_column = None
    split_files = {"val": cfg.val_file, "test": cfg.test_file}
    if cfg.split_column is not None or any(split_files.values()):
        df = with_official_splits(
            df,
            source_name=str(cfg.intent_file),
            text_column=cfg.text_column,
            label_column=cfg.label_column,
            split_column=cfg.split_column,
            split_files={
                split: (read_table(path), str(path))
                for split, path in split_files.items()
                if path is not None
            },
        )
        split_column = OFFICIAL_SPLIT_KEY
    return intent_frame_to_landing(
        df,
        landing,
        text_column=cfg.text_column,
        label_column=cfg.label_column,
        date=cfg.partition_date,
        source_name=cfg.intent_file.name,
        sample=cfg.sample,
        seed=seed,
        split_column=split_column,
    )


def ingest(
    params: Params, *, first_day: int | None = None, n_days: int | None = None
) -> dict[str, Any]:
    """Bring new data into the landing area as configured by ``params.ingest``."""
    cfg = params.ingest
    official = [k for k in OFFICIAL_SPLIT_KEYS if getattr(cfg, k) is not None]
    if official and cfg.source != "intent_file":
        raise ConfigError(
            f"ingest.{official[0]} is set but ingest.source is {cfg.source}: "
            f"{', '.join(f'ingest.{k}' for k in OFFICIAL_SPLIT_KEYS)} apply to source "
            "intent_file only"
        )
    landing = params.paths.landing
    landing.mkdir(parents=True, exist_ok=True)
    if cfg.source == "synthetic":
        from ml.data.synthetic import generate_world

        meta = generate_world(params.generator, landing, first_day=first_day, n_days=n_days)
        return {"source": "synthetic", **meta}
    if cfg.source == "intent_file":
        return ingest_intent_file(cfg, landing, seed=params.seed)
    if cfg.source == "s3":
        from ml.data.s3_landing import ingest_s3

        return ingest_s3(params)
    if cfg.directory is None:
        raise ConfigError("ingest.source is directory but ingest.directory is not set")
    return copy_new_partitions(cfg.directory, params)
