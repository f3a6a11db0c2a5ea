"""Offline A/B gate: is the challenger better than the champion on the same frozen test data?

This module does the I/O around the pure decision (:mod:`ml.release.gate.rules`): it loads both
models from the registry (``models:/<name>/<version>`` and ``models:/<name>@champion``), scores
both with the family's one scoring function (:mod:`ml.core.families`:
``ml.models.intent.scoring`` / ``ml.models.recommender.scoring``, which ``evaluate`` uses too),
measures latency and the behavioural checks, then writes and logs the reports and tags the
challenger's model version. Every metric comes from :mod:`ml.core.metrics`, so gating a model
against itself gives exactly zero on every metric and slice.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core import metrics as m
from ml.core.errors import InputError
from ml.core.families import Family, get_family
from ml.release.gate.decision import GateDecision
from ml.release.gate.rules import PointMetrics, decide
from ml.stack.model_store import TRAINED_ON_TAG, read_registration

if TYPE_CHECKING:
    from ml.core.config import FamilyGateConfig, Params

log = logging.getLogger(__name__)
# Timed passes over the latency batch per model (each keeps its best): ~0.1 s a pass on 2 cores.
LATENCY_ROUNDS = 7


# ----------------------------------------------------------------------------- measurements


def measure_latencies(
    models: dict[str, Any],
    batch: pd.DataFrame,
    params: dict[str, Any] | None,
    rounds: int = LATENCY_ROUNDS,
) -> dict[str, float]:
    """Milliseconds per row of each model on the same warm batch. The models take turns, round
    after round, and each keeps its best round, so a slow spell of a shared CPU hits both
    rather than whichever model was being timed (one model's best of three, then the other's,
    moved the champion/challenger ratio by up to 70% between repeats on 2 cores)."""

    def call(model: Any, rows: pd.DataFrame) -> None:
        model.predict(rows, params=params) if params else model.predict(rows)

    for model in models.values():
        call(model, batch.head(2))  # warm: lazy loading and first-call allocations
    best = dict.fromkeys(models, math.inf)
    for _ in range(rounds):
        for role, model in models.items():
            start = time.perf_counter()
            call(model, batch)
            best[role] = min(best[role], time.perf_counter() - start)
    return {role: 1000.0 * seconds / max(len(batch), 1) for role, seconds in best.items()}


def latency_batch(fam: Family, test: Any, rows: int) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """A batch in the registered-model input contract, from the frozen test data."""
    if fam.name == "intent":
        return test[["text"]].head(rows).reset_index(drop=True), None
    ids = test.items["item_id"].astype(str).to_numpy()
    histories = [[str(ids[i]) for i in h] for h in test.test["history"].head(rows)]
    return pd.DataFrame({"history": histories}), {"k": 10}


def point_metrics(fam: Family, frame: pd.DataFrame, test: Any) -> dict[str, float]:
    """Per-model numbers without a per-row form (no interval): catalogue coverage of top lists."""
    if fam.name != "recommender" or "top" not in frame:
        return {}
    from ml.models.recommender.scoring import TOP_COLUMN

    top = np.stack(frame[TOP_COLUMN].to_numpy()) if len(frame) else np.zeros((0, m.TOP_N))
    return {f"coverage@{top.shape[1]}": m.catalog_coverage(top, test.n_items)}


def champion_slices(
    fam: Family, frames: list[pd.DataFrame], champion_mv: Any, champion_model: Any, test: Any
) -> list[str]:
    """Slices defined by what the champion never saw; added to every frame. Returns notes.

    intent ``new_data``: texts first seen in a partition the champion was not trained on (its
    ``shopflow.trained_on`` tag). recommender ``new_item_target``: the held-out item is not in
    the champion's catalogue (a product launched since)."""
    import json

    notes: list[str] = []
    if fam.name == "intent":
        raw = (champion_mv.tags or {}).get(TRAINED_ON_TAG)
        if not raw or "first_seen" not in frames[0]:
            notes.append("slice new_data: unknown (no trained_on tag on the champion or no dates)")
            return notes
        seen = {str(d) for dates in json.loads(raw).values() for d in dates}
        for frame in frames:
            frame["new_data"] = ~frame["first_seen"].astype(str).isin(seen)
        return notes
    from ml.models.recommender.scoring import as_recommender

    rec = as_recommender(champion_model)
    if rec is None:
        notes.append("slice new_item_target: unknown (the champion exposes no catalogue)")
        return notes
    known = set(rec.item_ids)
    ids = test.items["item_id"].astype(str).to_numpy()
    for frame in frames:
        frame["new_item_target"] = [ids[t] not in known for t in frame["target"]]
    return notes


# ----------------------------------------------------------------------------- behavioural checks


def suite_file(path: str) -> Path:
    """A suite path as configured: relative to the project folder, else to this checkout."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.is_file():
        return candidate
    return Path(__file__).resolve().parents[3] / path


def behaviour_report(fam: Family, suite_path: str, model: Any, test: Any, params: Params) -> Any:
    """One model through the family's behavioural suite (:mod:`ml.release.gate.behaviour`)."""
    from ml.release.gate import behaviour

    suite = behaviour.load_suite(suite_file(suite_path))
    if fam.name == "intent":
        from ml.models.intent.data import load_labels
        from ml.models.intent.scoring import predict_texts

        def predict(texts: list[str]) -> list[str]:
            return predict_texts(model, texts)["label"].astype(str).tolist()

        return behaviour.run_intent_suite(
            suite,  # type: ignore[arg-type]
            predict,
            known_labels=load_labels(params.paths.processed),
            oos_label=params.intent.oos_label,
        )
    from ml.models.recommender.features import item_texts
    from ml.models.recommender.scoring import unwrap

    ids = test.items["item_id"].astype(str).to_numpy()
    histories = [[str(ids[i]) for i in h] for h in test.test["history"]]
    item_text = dict(zip(ids, item_texts(test.items), strict=True))
    return behaviour.run_recommender_suite(
        suite,  # type: ignore[arg-type]
        unwrap(model),
        histories,
        item_text,
    )


def run_behaviour(
    fam: Family,
    params: Params,
    test: Any,
    challenger_model: Any,
    champion_model: Any | None,
) -> dict[str, Any] | None:
    """Both models through the family's behavioural suite and the comparison rule."""
    from ml.release.gate.behaviour import compare_behaviour

    rule = getattr(params.gate, fam.name).behaviour
    if not rule.enabled:
        return None
    suite_path = rule.suite or fam.behaviour_suite
    chal = behaviour_report(fam, suite_path, challenger_model, test, params)
    champ = (
        behaviour_report(fam, suite_path, champion_model, test, params)
        if champion_model is not None
        else None
    )
    passed, lines = compare_behaviour(chal, champ, rule.max_extra_failures)
    # The summary line says PASS/FAIL itself; a failing comparison's case lines are reasons too.
    tag = "PASS" if passed else "FAIL"
    checks = [line if line.startswith(("PASS", "FAIL")) else f"{tag} {line}" for line in lines]
    return {
        "suite": str(suite_path),
        "max_extra_failures": rule.max_extra_failures,
        "passed": passed,
        "checks": checks,
        "challenger": chal.to_dict(),
        "champion": champ.to_dict() if champ is not None else None,
        "_reports": (chal, champ),
    }


# ----------------------------------------------------------------------------- loading and scoring


def load_for_gate(uri: str, role: str) -> Any:
    """A registered model for the gate; one that does not load is a one-line error naming it
    (the champion is untouched: the gate moves only the ``challenger`` alias)."""
    from ml.core.errors import ShopflowError
    from ml.stack import model_store

    try:
        return model_store.load_model(uri)
    except ShopflowError:
        raise
    except Exception as exc:  # MLflow and the model's own load_context raise many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"the {role} {uri} does not load from the registry: {first}") from exc


@dataclass
class _Scored:
    """Both sides scored on the same frozen test data; champion fields stay None on a first
    run. ``point``: per-model numbers without a per-row form (coverage, latency); ``notes``:
    caveats on the slices defined by the champion (:func:`champion_slices`)."""

    test: Any
    challenger_model: Any
    challenger: pd.DataFrame
    point: PointMetrics
    champion_model: Any | None = None
    champion: pd.DataFrame | None = None
    notes: list[str] | None = None


def _score_both(
    fam: Family, params: Params, name: str, version: str, champion_mv: Any | None
) -> _Scored:
    """Load and score the challenger, then (if there is one) the champion, on the same data."""
    from ml.stack import model_store

    test = fam.load_frozen_test(params)
    chal_model = load_for_gate(f"models:/{name}/{version}", "challenger")
    challenger = fam.score(chal_model, test, params)
    point: PointMetrics = {"challenger": point_metrics(fam, challenger, test), "champion": {}}
    scored = _Scored(test, chal_model, challenger, point)
    if champion_mv is None:
        return scored
    champ_model = load_for_gate(f"models:/{name}@{model_store.CHAMPION}", "champion")
    champion_frame = fam.score(champ_model, test, params)
    point["champion"] = point_metrics(fam, champion_frame, test)
    scored.champion_model, scored.champion = champ_model, champion_frame
    scored.notes = champion_slices(
        fam, [challenger, champion_frame], champion_mv, champ_model, test
    )
    if params.gate.latency_rows:
        # One batch for both models, so their per-row latencies compare.
        batch, call_params = latency_batch(fam, test, params.gate.latency_rows)
        models = {"champion": champ_model, "challenger": chal_model}
        for role, ms in measure_latencies(models, batch, call_params).items():
            point[role]["latency_ms"] = ms
    return scored


# ----------------------------------------------------------------------------- outcome and gate


def _summary(
    family: str, name: str, version: str, decision: GateDecision, reports: dict[str, str]
) -> dict[str, Any]:
    """What :func:`run_gate` returns: the decision and where its reports were written."""
    return {
        "family": family,
        "model": name,
        "version": version,
        "decision": decision.decision,
        "promote": decision.promote,
        "first_run": decision.first_run,
        "tie": decision.tie,
        "reasons": decision.reasons,
        "reports": reports,
    }


def _already_champion(family: str, name: str, version: str) -> dict[str, Any]:
    """The summary of a re-run after promotion: nothing to compare, nothing to fail a DAG over."""
    return {
        "family": family,
        "model": name,
        "version": version,
        "decision": "keep_champion",
        "promote": False,
        "first_run": False,
        "tie": False,
        "reasons": [f"v{version} is already the champion; nothing to gate"],
        "reports": {},
    }


def _version_tags(
    decision: GateDecision,
    fam_cfg: FamilyGateConfig,
    champion_version: str | None,
    behaviour: dict[str, Any] | None,
) -> dict[str, str]:
    """The ``gate.*`` tags the challenger's model version gets: decision, reasons, primary."""
    primary = next(
        (
            e
            for e in decision.estimates
            if fam_cfg.primary and e.slice == "all" and e.metric == fam_cfg.primary.metric
        ),
        None,
    )
    tags = {
        "gate.decision": decision.decision,
        "gate.first_run": str(decision.first_run),
        "gate.tie": str(decision.tie),
        "gate.champion_version": str(champion_version),
        "gate.reasons": "; ".join(decision.reasons)[:4900],
    }
    if behaviour is not None and behaviour["challenger"].get("pass_rate") is not None:
        tags["gate.behaviour_pass_rate"] = f"{behaviour['challenger']['pass_rate']:.4f}"
    if primary is not None:
        tags["gate.primary_metric"] = primary.metric  # "@" is not allowed in tag keys
        tags["gate.primary_value"] = f"{primary.challenger:.6f}"
        if primary.low is not None:
            tags["gate.improvement"] = f"{primary.improvement:+.6f}"
            tags["gate.interval"] = f"[{primary.low:+.6f}, {primary.high:+.6f}]"
    return tags


def _fast_variant_line(tags: dict[str, str]) -> str | None:
    """What evaluate's accuracy check of the version's fast export found (its version tags),
    so the report says which variant serving will run; None when there is no export."""
    from ml.stack import model_store as ms

    variant = tags.get(ms.FAST_VARIANT_TAG)
    if not variant:
        return None
    delta = tags.get(ms.FAST_VARIANT_DELTA_TAG)
    measured = f"test accuracy {float(delta):+.2%} against the model" if delta else "not measured"
    used = "served" if tags.get(ms.FAST_VARIANT_OK_TAG) == "true" else "not served (torch is)"
    return f"{variant}: {measured}; {used}"


def run_gate(family: str, params: Params, client: Any = None) -> dict[str, Any]:
    """Gate the challenger in registration.json against the current champion: load both from
    the registry, score both with the family's scorer, run the behavioural checks, decide;
    write and log the reports; tag the challenger's model version. Returns a summary."""
    from ml.release.gate.reports import write_reports
    from ml.stack import model_store
    from ml.stack.s3_errors import stack_errors_explained

    fam = get_family(family)
    reg = read_registration(params.paths.models, family)
    client = client or model_store.get_client(params)
    name = str(reg["model_name"])
    version = str(reg["version"])
    champion_mv = model_store.get_alias(client, name, model_store.CHAMPION)
    context: dict[str, Any] = {
        "model": name,
        "challenger_version": version,
        "challenger_run": reg["run_id"],
        "champion_version": str(champion_mv.version) if champion_mv else None,
    }
    if champion_mv is not None and str(champion_mv.version) == version:
        return _already_champion(family, name, version)
    fast = _fast_variant_line(client.get_model_version(name, version).tags)
    if fast:
        context["fast variant (checked by evaluate)"] = fast
    scored = _score_both(fam, params, name, version, champion_mv)
    if scored.notes is not None:
        context["notes"] = scored.notes
    behaviour = run_behaviour(
        fam, params, scored.test, scored.challenger_model, scored.champion_model
    )
    reports = behaviour.pop("_reports") if behaviour else None
    online = None
    if champion_mv is not None:
        from ml.release.gate.online import describe, online_agreement

        online = online_agreement(
            params.serving.prediction_log_dir, family, str(champion_mv.version), version
        )
        if online is not None:
            context["online agreement (shadow traffic)"] = describe(online)
    fam_cfg = getattr(params.gate, family)
    decision = decide(
        scored.challenger,
        scored.champion,
        family,
        fam_cfg,
        params.gate,
        scored.point,
        behaviour=behaviour,
    )
    paths = write_reports(decision, params.paths.reports / family, context, behaviour=reports)
    with stack_errors_explained(f"logging the gate reports to run {reg['run_id']}"):
        for path in paths.values():
            client.log_artifact(reg["run_id"], path, artifact_path="gate")
    tags = _version_tags(decision, fam_cfg, context["champion_version"], behaviour)
    if online is not None:
        tags["gate.online_agreement"] = f"{online['value']:.4f}"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    with stack_errors_explained(f"setting alias {model_store.CHALLENGER} on {name} v{version}"):
        client.set_registered_model_alias(name, model_store.CHALLENGER, version)
    log.info("gate %s v%s: %s", name, version, decision.decision)
    return {**_summary(family, name, version, decision, paths), "online_agreement": online}
