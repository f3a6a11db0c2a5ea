"""Drift monitor: is the data arriving now different from what the champion was trained on?

Reference = the validated partitions the current champion was trained on (the retrain DAG tags
each registered version with them, ``shopflow.trained_on``); current = the landing partitions of
later dates. Without that tag (a model trained outside the DAG) the newest ``recent_days`` dates
are compared with every earlier validated date.

Signals
  utterances: label distribution (total variation), text length (two-sample KS statistic),
              embedding-centroid shift (cosine distance between mean sentence embeddings).
  events:     item popularity (total variation over items), category mix (total variation),
              share of interactions on items the reference never saw.
  served:     with a prediction log (``serving.prediction_log_dir``), the utterance signals again
              between the reference and what the online champion was asked in the newest
              ``recent_days`` days, its answers standing in for labels (``served_*``).
Drift is declared when any signal passes its threshold (:class:`DriftThresholds`; a served_*
signal uses its namesake's).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ml.core.families import get_family
from ml.core.metrics import (
    centroid_cosine_distance,
    distribution,
    ks_statistic,
    total_variation,
    weighted_mean,
)
from ml.core.tables import DATA_SUFFIXES, read_text_table
from ml.stack.model_store import TRAINED_ON_TAG

if TYPE_CHECKING:
    from ml.core.config import Params

log = logging.getLogger(__name__)

DRIFT_EXPERIMENT = "drift-monitor"


class DriftThresholds(BaseModel):
    """A signal at or above its threshold means drift.

    Calibrated on the synthetic shop, 3 reference days vs 1 new day. Same distribution:
    label_tv 0.02, length_ks 0.05-0.10, centroid 0.019 (MiniLM), popularity_tv 0.27-0.44 and
    category_tv 0.06-0.16 (6000 down to 180 events a day), new_item_share 0. With
    ``drift.strength=0.3``: label_tv 0.23, centroid 0.031; at 0.8 (15 new items): popularity_tv
    0.53-0.72, category_tv 0.33-0.40, new_item_share 0.16-0.34. Popularity over single items
    is noisy on small days, hence its high threshold."""

    model_config = ConfigDict(extra="forbid")

    label_tv: float = Field(0.12, gt=0, le=1)
    length_ks: float = Field(0.15, gt=0, le=1)
    centroid_cosine: float = Field(0.03, gt=0, le=2)
    popularity_tv: float = Field(0.5, gt=0, le=1)
    category_tv: float = Field(0.2, gt=0, le=1)
    new_item_share: float = Field(0.10, gt=0, le=1)


@dataclass
class PartitionSelection:
    """Which dates are compared, per dataset."""

    reference: dict[str, list[str]]
    current: dict[str, list[str]]
    basis: str  # "champion" (trained_on tag) or "recent_days"


# --------------------------------------------------------------------------- statistics


def _sample_texts(texts: pd.Series, n: int, seed: int) -> list[str]:
    if len(texts) > n:
        texts = texts.sample(n=n, random_state=seed)
    return texts.astype(str).tolist()


def intent_signals(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    model_path: str | Path | None = None,
    sample: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """Drift signals between two utterance frames (columns ``text``, ``intent``)."""
    from ml.models.encoders import encode_texts

    ref_len = reference["text"].astype(str).str.len().to_numpy()
    cur_len = current["text"].astype(str).str.len().to_numpy()
    # Same-size samples: the centroid of a small sample is noisier, which would bias the distance.
    n = min(sample, len(reference), len(current))
    ref_vec = encode_texts(_sample_texts(reference["text"], n, seed), model_path)
    cur_vec = encode_texts(_sample_texts(current["text"], n, seed + 1), model_path)
    return {
        "label_tv": total_variation(
            distribution(reference["intent"]), distribution(current["intent"])
        ),
        "length_ks": ks_statistic(ref_len, cur_len),
        "centroid_cosine": centroid_cosine_distance(ref_vec, cur_vec),
        "mean_length_reference": float(ref_len.mean()) if len(ref_len) else 0.0,
        "mean_length_current": float(cur_len.mean()) if len(cur_len) else 0.0,
    }


def champion_confidence(
    params: Params, reference: pd.DataFrame, current: pd.DataFrame, sample: int
) -> dict[str, float]:
    """The champion's mean top-class confidence on reference vs new utterances, scored by the
    intent scorer the gate uses (reported; a drop says the champion is less sure on new data)."""
    from ml.models.intent.scoring import score_intent_model
    from ml.stack import model_store

    name = model_store.model_name(params, "intent")
    model = model_store.load_model(f"models:/{name}@{model_store.CHAMPION}")
    n = min(sample, len(reference), len(current))
    conf = {}
    for which, frame, seed in (("reference", reference, params.seed), ("current", current, 1)):
        texts = pd.DataFrame({"text": _sample_texts(frame["text"], n, params.seed + seed)})
        scored = score_intent_model(model, texts)
        conf[which] = float(weighted_mean(scored["confidence"].to_numpy()))
    return {
        "champion_confidence_reference": conf["reference"],
        "champion_confidence_current": conf["current"],
        "champion_confidence_drop": conf["reference"] - conf["current"],
    }


def served_utterances(params: Params, recent_days: int) -> pd.DataFrame:
    """What the online champion was asked (``text``) and answered (``intent``) in the newest
    ``recent_days`` days of the prediction log (ml.core.prediction_log; texts already scrubbed
    of personal data); empty when nothing was served."""
    from datetime import timedelta

    from ml.core.prediction_log import read_prediction_log

    log = read_prediction_log(params.serving.prediction_log_dir, "intent")
    log = log[log["role"] == "champion"]
    if log.empty:
        return pd.DataFrame({"text": [], "intent": []})
    since = log["ts"].max().date() - timedelta(days=recent_days - 1)
    rows = log[log["ts"].dt.date >= since]
    return pd.DataFrame(
        {
            "text": [json.loads(i).get("text") for i in rows["input"]],
            "intent": [json.loads(o).get("label") for o in rows["output"]],
        }
    ).dropna()


def recommender_signals(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_catalog: pd.DataFrame,
    current_catalog: pd.DataFrame,
) -> dict[str, float]:
    """Drift signals between two event frames (``item_id``); the catalogs map items to
    categories, and an item absent from the reference catalog is new (launched since)."""
    catalog = pd.concat([reference_catalog, current_catalog])
    categories = catalog.drop_duplicates("item_id", keep="last").set_index("item_id")["category"]
    ref_cat = reference["item_id"].map(categories).fillna("<unknown>")
    cur_cat = current["item_id"].map(categories).fillna("<unknown>")
    # New = not in the reference catalog (not "not interacted with": on small days many old
    # items simply were not clicked, which is noise, not drift).
    known = set(reference_catalog["item_id"].astype(str)) | set(reference["item_id"].astype(str))
    new_share = (~current["item_id"].astype(str).isin(known)).mean() if len(current) else 0.0
    return {
        "popularity_tv": total_variation(
            distribution(reference["item_id"]), distribution(current["item_id"])
        ),
        "category_tv": total_variation(distribution(ref_cat), distribution(cur_cat)),
        "new_item_share": float(new_share),
    }


# --------------------------------------------------------------------------- partitions


def dated_partitions(root: Path, dataset: str) -> dict[str, Path]:
    """``{date: folder}`` of ``root/<dataset>/date=YYYY-MM-DD``."""
    base = root / dataset
    if not base.is_dir():
        return {}
    return {
        p.name.split("=", 1)[1]: p
        for p in sorted(base.iterdir())
        if p.is_dir() and p.name.startswith("date=")
    }


def read_partitions(folders: list[Path]) -> pd.DataFrame:
    files = [
        f
        for folder in folders
        for f in sorted(folder.iterdir())
        if f.is_file() and f.suffix.lower() in DATA_SUFFIXES
    ]
    if not files:
        return pd.DataFrame()
    return pd.concat([read_text_table(f) for f in files])


def champion_trained_on(params: Params, family: str) -> dict[str, list[str]] | None:
    """The champion's ``shopflow.trained_on`` tag ({dataset: [dates]}), None if unknown."""
    from ml.stack import model_store

    client = model_store.get_client(params)
    name = model_store.model_name(params, family)
    try:
        champion = model_store.get_alias(client, name, model_store.CHAMPION)
    except Exception as exc:  # no registered model yet: nothing to compare with
        log.info("no champion for %s (%s)", name, exc)
        return None
    if champion is None or TRAINED_ON_TAG not in champion.tags:
        return None
    return dict(json.loads(champion.tags[TRAINED_ON_TAG]))


def select_partitions(
    params: Params,
    family: str,
    trained_on: dict[str, list[str]] | None,
    recent_days: int = 1,
) -> PartitionSelection:
    """Reference and current dates per dataset of ``family`` (see the module docstring)."""
    reference: dict[str, list[str]] = {}
    current: dict[str, list[str]] = {}
    for ds in get_family(family).datasets:
        validated = sorted(dated_partitions(params.paths.validated, ds))
        landing = sorted(dated_partitions(params.paths.landing, ds))
        if trained_on is not None:
            seen = set(trained_on.get(ds, []))
            reference[ds] = [d for d in validated if d in seen]
            newest_seen = max(seen) if seen else ""
            current[ds] = [d for d in landing if d not in seen and d > newest_seen]
        else:
            recent = landing[-recent_days:]
            current[ds] = recent
            reference[ds] = [d for d in validated if recent and d < recent[0]]
    return PartitionSelection(reference, current, "champion" if trained_on else "recent_days")


def _frames(
    params: Params, selection: PartitionSelection, dataset: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    validated = dated_partitions(params.paths.validated, dataset)
    landing = dated_partitions(params.paths.landing, dataset)
    ref = read_partitions([validated[d] for d in selection.reference[dataset]])
    cur = read_partitions([landing[d] for d in selection.current[dataset]])
    return ref, cur


# --------------------------------------------------------------------------- the check


def check_drift(
    family: str,
    params: Params,
    *,
    thresholds: DriftThresholds | None = None,
    model_path: str | Path | None = None,
    sample: int = 500,
    recent_days: int = 1,
    use_champion: bool = True,
) -> dict[str, Any]:
    """Compute the family's drift signals and decide; writes ``<reports>/drift/<family>.json``."""
    get_family(family)  # one line naming the known families when unknown
    thresholds = thresholds or DriftThresholds()
    trained_on = champion_trained_on(params, family) if use_champion else None
    selection = select_partitions(params, family, trained_on, recent_days)
    result: dict[str, Any] = {
        "family": family,
        "basis": selection.basis,
        "reference_dates": selection.reference,
        "current_dates": selection.current,
        "signals": {},
        "exceeded": [],
        "drifted": False,
    }
    missing = [
        ds
        for ds in get_family(family).datasets
        if not selection.reference[ds] or not selection.current[ds]
    ]
    if missing:
        result["note"] = (
            "nothing to compare for " + ", ".join(missing) + " (no new or no reference partitions)"
        )
    elif family == "intent":
        ref, cur = _frames(params, selection, "utterances")
        result["signals"] = intent_signals(
            ref, cur, model_path=model_path, sample=sample, seed=params.seed
        )
        if use_champion and trained_on is not None:
            result["signals"].update(champion_confidence(params, ref, cur, sample))
    if family == "intent" and selection.reference["utterances"]:
        # Real traffic, when the server logged some: the same signals against the reference,
        # with the champion's answers standing in for labels (served_*; same thresholds).
        served = served_utterances(params, recent_days)
        if len(served):
            ref = read_partitions(
                [
                    dated_partitions(params.paths.validated, "utterances")[d]
                    for d in selection.reference["utterances"]
                ]
            )
            signals = intent_signals(
                ref, served, model_path=model_path, sample=sample, seed=params.seed
            )
            result["signals"].update({f"served_{k}": v for k, v in signals.items()})
            result["served_rows"] = len(served)
    else:
        ref, cur = _frames(params, selection, "events")
        cat_ref, cat_cur = _frames(params, selection, "catalog")
        result["signals"] = recommender_signals(ref, cur, cat_ref, cat_cur)
    limits = thresholds.model_dump()
    result["thresholds"] = limits
    limit_of = {**limits, **{f"served_{k}": v for k, v in limits.items()}}
    result["exceeded"] = [
        f"{name} {value:.4f} >= {limit_of[name]}"
        for name, value in result["signals"].items()
        if name in limit_of and value >= limit_of[name]
    ]
    result["drifted"] = bool(result["exceeded"])
    out = params.paths.reports / "drift" / f"{family}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    result["report"] = str(out)
    log.info("drift %s: %s", family, result["exceeded"] or "none")
    return result


def log_drift_to_mlflow(params: Params, result: dict[str, Any]) -> str:
    """One run per check in the ``drift-monitor`` experiment; returns the run id."""
    import mlflow

    from ml.stack.tracking import configure_mlflow, step_run

    configure_mlflow(params.mlflow, DRIFT_EXPERIMENT)
    with step_run(result["family"], "drift") as run:
        mlflow.set_tags(
            {
                "family": result["family"],
                "drifted": str(result["drifted"]),
                "basis": result["basis"],
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in result["signals"].items()})
        mlflow.log_artifact(result["report"])
    return str(run.info.run_id)
