"""The gate's latency measurement: both models timed in turns on the same batch."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from ml.release.gate.run import measure_latencies


class Recorder:
    """A model whose calls are logged; ``slow_calls`` of its full-batch calls are slow."""

    def __init__(self, name: str, log: list[str], seconds: float, slow_calls: set[int]) -> None:
        self.name, self.log, self.seconds, self.slow_calls = name, log, seconds, slow_calls
        self.full_calls = 0

    def predict(self, rows: pd.DataFrame, params: dict[str, Any] | None = None) -> None:
        self.log.append(f"{self.name}:{len(rows)}")
        if len(rows) > 2:
            self.full_calls += 1
            extra = 0.05 if self.full_calls in self.slow_calls else 0.0
            time.sleep(self.seconds + extra)


def test_models_take_turns_and_keep_their_best_round() -> None:
    log: list[str] = []
    batch = pd.DataFrame({"text": [f"t{i}" for i in range(10)]})
    # A slow spell hits the challenger's first two rounds: its best round must not show it.
    champion = Recorder("champion", log, 0.002, slow_calls=set())
    challenger = Recorder("challenger", log, 0.002, slow_calls={1, 2})
    ms = measure_latencies({"champion": champion, "challenger": challenger}, batch, None, 4)
    assert log[:2] == ["champion:2", "challenger:2"]  # both warmed before any timing
    assert log[2:] == ["champion:10", "challenger:10"] * 4
    assert set(ms) == {"champion", "challenger"}
    # 2 ms per 10 rows = 0.2 ms a row (plus sleep overshoot); the 50 ms spells are not in it.
    assert 0.2 <= ms["champion"] < 2.0 and 0.2 <= ms["challenger"] < 2.0
