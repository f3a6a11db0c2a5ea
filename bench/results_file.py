"""Where a bench's numbers go: its JSON in bench/results/, with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def write_results(result: dict[str, Any], out: Path, indent: int = 2) -> None:
    """Add the machine to ``result``, write it to ``out`` as JSON and say where."""
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=indent) + "\n")
    print(f"wrote {out}")
