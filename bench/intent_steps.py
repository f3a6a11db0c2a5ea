"""The intent pipeline's five steps through `python -m ml`'s entry point, for the benches that
train a model on real data (bench/hwu64_quality.py, bench/intent_fast_path.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = {
    "ingest": ["ingest"],
    "validate": ["validate"],
    "preprocess": ["preprocess", "intent"],
    "train": ["train", "intent", "--no-resume"],
    "evaluate": ["evaluate", "intent"],
}


def run_intent_steps(workdir: Path, sets: list[str], label: str) -> dict[str, float]:
    """ingest -> validate -> preprocess -> train -> evaluate in ``workdir`` with the repository's
    params.yaml and ``sets`` overrides; returns each step's seconds."""
    from ml.cli import run_step

    common = ["--params", str(REPO / "params.yaml")]
    for entry in sets:
        common += ["--set", entry]
    seconds: dict[str, float] = {}
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        for step, argv in STEPS.items():
            started = time.perf_counter()
            print(f"[{label}] {step} ...", flush=True)
            run_step([*argv, *common])
            seconds[step] = round(time.perf_counter() - started, 1)
    finally:
        os.chdir(cwd)
    return seconds
