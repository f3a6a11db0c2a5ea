"""Online agreement: how often the challenger, served in shadow, agreed with the champion.

The serving layer (``serving.shadow: true``) logs, for each request, the champion's answer and
the challenger's prediction of the same input with the same ``request_id``
(:mod:`ml.core.prediction_log`). Pairing those rows gives agreement on real traffic, which the
offline comparison on the frozen test split cannot see: intent, the share of texts given the
same label; recommender, the mean top-k overlap (:func:`ml.core.metrics.top_k_overlap`). The
interval is a bootstrap over paired predictions. Agreement is reported, not gated on: a better
model must disagree somewhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.core import metrics as m
from ml.core.prediction_log import read_prediction_log
from ml.core.stats import percentile_interval, resample_weights

METRIC = {"intent": "label agreement", "recommender": "top-k overlap"}


def _answers(frame: pd.DataFrame, family: str) -> list[Any]:
    outputs = [json.loads(o) for o in frame["output"]]
    if family == "intent":
        return [o.get("label") for o in outputs]
    return [list(o.get("items") or []) for o in outputs]


def paired_predictions(
    log: pd.DataFrame, champion_version: str, challenger_version: str
) -> pd.DataFrame:
    """Champion and shadow rows of the same request and input, one row per pair."""
    keys = ["request_id", "input"]

    def side(role: str, version: str) -> pd.DataFrame:
        rows = log[(log["role"] == role) & (log["model_version"].astype(str) == str(version))]
        return rows.drop_duplicates(keys)[[*keys, "ts", "output"]]

    return side("champion", champion_version).merge(
        side("shadow", challenger_version), on=keys, suffixes=("_champion", "_shadow")
    )


def online_agreement(
    log_root: str | Path,
    family: str,
    champion_version: str,
    challenger_version: str,
    *,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any] | None:
    """Agreement of the shadow challenger with the champion in the prediction log, or None when
    the log holds no pair of those two versions."""
    if not Path(log_root).is_dir():
        return None
    log = read_prediction_log(log_root, family)
    pairs = paired_predictions(log, champion_version, challenger_version)
    if pairs.empty:
        return None
    champion = _answers(pairs.rename(columns={"output_champion": "output"}), family)
    shadow = _answers(pairs.rename(columns={"output_shadow": "output"}), family)
    metric: Callable[..., Any]
    if family == "intent":
        per_pair = np.array([a == b for a, b in zip(champion, shadow, strict=True)])
        metric = m.accuracy
    else:
        per_pair = m.top_k_overlap(champion, shadow)
        metric = m.weighted_mean
    samples = np.concatenate(
        [metric(per_pair, w) for w in resample_weights(len(per_pair), resamples, seed)]
    )
    low, high = percentile_interval(samples, confidence)
    return {
        "metric": METRIC[family],
        "value": float(metric(per_pair)),
        "low": low,
        "high": high,
        "confidence": confidence,
        "pairs": len(pairs),
        "requests": int(pairs["request_id"].nunique()),
        "champion_version": str(champion_version),
        "challenger_version": str(challenger_version),
        "first": str(pairs["ts_champion"].min()),
        "last": str(pairs["ts_champion"].max()),
        "log": str(log_root),
    }


def describe(agreement: dict[str, Any]) -> str:
    """One line for the gate report."""
    return (
        f"{agreement['value']:.1%} {agreement['metric']} "
        f"[{agreement['low']:.1%}, {agreement['high']:.1%}] over {agreement['pairs']} shadow "
        f"predictions ({agreement['requests']} requests, {agreement['first'][:16]} to "
        f"{agreement['last'][:16]}; champion v{agreement['champion_version']} answered, "
        f"challenger v{agreement['challenger_version']} in shadow)"
    )
