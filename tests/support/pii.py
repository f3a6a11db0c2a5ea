"""Personal data injected by the synthetic shop (generator.pii_rate) and a search for it in
files: shared by the privacy tests and the DVC pipeline test (the DVC cache must not hold it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ml.core.config.data import GeneratorConfig
from ml.data.pii_samples import DECOY
from ml.data.utterances import generate_utterances
from ml.data.world import build_world


def injected_values(cfg: GeneratorConfig) -> set[str]:
    world = build_world(cfg)
    return {
        s.value
        for day in range(cfg.first_day, cfg.first_day + cfg.days)
        for u in generate_utterances(world, cfg, day)
        for s in u.pii
        if s.entity != DECOY
    }


def leaks(roots: list[Path], values: set[str]) -> dict[str, list[str]]:
    """Files under ``roots`` holding any of ``values``. A Parquet file (found by its magic bytes:
    the DVC cache names files by hash) is read as a table, since its pages are compressed."""
    found: dict[str, list[str]] = {}
    for root in roots:
        for file in (f for f in root.rglob("*") if f.is_file()):
            raw = file.read_bytes()
            if raw[:4] == b"PAR1" and raw[-4:] == b"PAR1":
                frame = pd.read_parquet(file)
                text = frame.astype(str).to_csv(index=False)
            else:
                text = raw.decode("utf-8", errors="replace")
            hits = sorted(v for v in values if v in text)
            if hits:
                found[str(file)] = hits[:3]
    return found
