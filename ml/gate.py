"""Offline A/B gate: is the challenger better than the champion on the same frozen test data?

Both sides are measured by the same code: each model is loaded from the registry
(``models:/<name>/<version>`` and ``models:/<name>@champion``) and scored by its family's one
scoring function (:mod:`ml.core.families`: ``ml.intent.scoring`` / ``ml.recommender.scoring``,
which ``evaluate`` uses too); every metric comes from :mod:`ml.core.metrics`. Gating a model
against itself therefore gives exactly zero on every metric and slice.

The decision (:func:`decide`) is a pure function of the two paired evaluation frames, the
behavioural-check reports and the family's :class:`~ml.config.FamilyGateConfig`;
:func:`run_gate` does the I/O around it (registry loads, reports, MLflow logging and tags).

Statistics: a paired bootstrap over rows (examples for intent, users for the recommender). Each
resample is a vector of row counts, so every metric is the same weighted function as its point
estimate and a whole chunk of resamples is one matrix product (:mod:`ml.core.stats`).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core import metrics as m
from ml.core.families import Family, get_family
from ml.core.stats import percentile_interval, resample_weights
from ml.errors import InputError
from ml.gate_decision import Estimate, GateDecision, RuleResult
from ml.registry import TRAINED_ON_TAG, read_registration

if TYPE_CHECKING:
    from ml.config import FamilyGateConfig, GateConfig, MetricRule, Params

log = logging.getLogger(__name__)

INTENT_METRICS = ("accuracy", "macro_f1", "ece", "mean_confidence")
INTENT_COLUMNS = ("label", "predicted", "confidence", "correct", "raw_correct")
DECISIONS = ("promote", "reject", "keep_champion")
_EPS = 1e-12


# ----------------------------------------------------------------------------- pairing


def pair_frames(
    challenger: pd.DataFrame, champion: pd.DataFrame, family: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align two evaluation frames row by row on the family key; refuse anything not paired."""
    fam = get_family(family)
    key = fam.key_column
    for name, frame in (("challenger", challenger), ("champion", champion)):
        if key not in frame.columns:
            raise InputError(
                f"{name} evaluation frame has no {key!r} column: {list(frame.columns)}"
            )
        if frame[key].duplicated().any():
            raise InputError(f"{name} evaluation frame repeats {key!r} values; rows must be unique")
    only_chal = set(challenger[key]) - set(champion[key])
    only_champ = set(champion[key]) - set(challenger[key])
    if only_chal or only_champ:
        raise InputError(
            f"challenger and champion were not scored on the same test rows: {len(only_chal)} "
            f"{key} only in the challenger, {len(only_champ)} only in the champion"
        )
    chal = challenger.sort_values(key).reset_index(drop=True)
    champ = champion.sort_values(key).reset_index(drop=True)
    truth = fam.truth_column
    if truth in chal.columns and truth in champ.columns:
        differs = int((chal[truth].astype(str) != champ[truth].astype(str)).sum())
        if differs:
            raise InputError(
                f"column {truth!r} differs on {differs} rows between challenger and champion: "
                "not the same frozen test split"
            )
    return chal, champ


def slice_mask(frame: pd.DataFrame, spec: str) -> np.ndarray:
    """Rows of a slice: a boolean column (``cold_start``) or ``column=value`` (``category=x``)."""
    if "=" in spec:
        column, value = spec.split("=", 1)
        if column not in frame.columns:
            raise InputError(f"slice {spec!r}: column {column!r} not in evaluation frame")
        return (frame[column].astype(str) == value).to_numpy()
    if spec not in frame.columns:
        raise InputError(f"slice {spec!r}: column not in evaluation frame {list(frame.columns)}")
    return frame[spec].fillna(False).astype(bool).to_numpy()


# ----------------------------------------------------------------------------- metrics


class _Side:
    """One model's per-row arrays; any metric is a function of row weights W (B, n), computed
    by :mod:`ml.core.metrics` exactly as ``evaluate`` computes the point value."""

    ARRAYS = ("correct", "raw_correct", "confidence", "label_code", "pred_code")

    def __init__(self, frame: pd.DataFrame, family: str, classes: list[str]):
        self.family = family
        self.frame = frame
        self.n = len(frame)
        self.n_classes = max(len(classes), 1)
        if family == "intent":
            index = {c: i for i, c in enumerate(classes)}
            self.label_code = frame["label"].astype(str).map(index).to_numpy(dtype=np.int64)
            self.pred_code = frame["predicted"].astype(str).map(index).to_numpy(dtype=np.int64)
            self.correct = frame["correct"].astype(float).to_numpy()
            self.raw_correct = frame["raw_correct"].astype(float).to_numpy()
            self.confidence = frame["confidence"].astype(float).to_numpy()

    def subset(self, mask: np.ndarray) -> _Side:
        other = object.__new__(_Side)
        other.family, other.n, other.n_classes = self.family, int(mask.sum()), self.n_classes
        other.frame = self.frame.loc[mask].reset_index(drop=True)
        for name in self.ARRAYS:
            if hasattr(self, name):
                setattr(other, name, getattr(self, name)[mask])
        return other

    def available(self) -> list[str]:
        """Metrics reported for every gate run (rules may name any numeric column besides)."""
        if self.family == "intent":
            return list(INTENT_METRICS)
        return [c for c in self.frame.columns if m.is_ranking_metric(c)]

    def computable(self, metric: str) -> bool:
        if metric in self.available():
            return True
        column = self.frame.get(metric)
        return (
            self.family != "intent" and column is not None and pd.api.types.is_numeric_dtype(column)
        )

    def values(self, metric: str, weights: np.ndarray) -> np.ndarray:
        """The metric under each row of ``weights`` (B, n) -> (B,); nan for an empty resample."""
        if self.family == "intent":
            if metric == "accuracy":
                return np.asarray(m.accuracy(self.correct, weights))
            if metric == "mean_confidence":
                return np.asarray(m.weighted_mean(self.confidence, weights))
            if metric == "ece":
                return np.asarray(
                    m.expected_calibration_error(
                        self.confidence, self.raw_correct, m.ECE_BINS, weights
                    )
                )
            if metric == "macro_f1":
                return np.asarray(
                    m.macro_f1(self.label_code, self.pred_code, self.n_classes, weights)
                )
        column = self.frame[metric].astype(float).fillna(0.0).to_numpy()
        return np.asarray(m.weighted_mean(column, weights))


def mcnemar(challenger_correct: np.ndarray, champion_correct: np.ndarray) -> dict[str, float]:
    """McNemar's test on paired correctness (exact binomial when discordant pairs are few)."""
    from scipy import stats

    chal, champ = challenger_correct.astype(bool), champion_correct.astype(bool)
    b = int((champ & ~chal).sum())  # champion right, challenger wrong
    c = int((~champ & chal).sum())  # challenger right, champion wrong
    if b + c == 0:
        return {"champion_only": b, "challenger_only": c, "statistic": 0.0, "p_value": 1.0}
    if b + c < 25:
        p = stats.binomtest(min(b, c), b + c, 0.5).pvalue
        stat = float(min(b, c))
    else:
        stat = (abs(b - c) - 1) ** 2 / (b + c)
        p = stats.chi2.sf(stat, df=1)
    return {"champion_only": b, "challenger_only": c, "statistic": float(stat), "p_value": float(p)}


# ----------------------------------------------------------------------------- decision


def _wanted(
    fam: FamilyGateConfig, available: list[str], report_slices: list[str]
) -> list[tuple[str, str]]:
    """(slice, metric) pairs to estimate: every overall metric, the primary on each report
    slice, plus every ruled pair."""
    pairs = [("all", metric) for metric in available]
    rules = ([fam.primary] if fam.primary else []) + list(fam.guardrails)
    pairs += [("all", r.metric) for r in rules]
    headline = fam.primary.metric if fam.primary else (available[0] if available else None)
    if headline:
        pairs += [(spec, headline) for spec in report_slices]
    pairs += [(spec, r.metric) for spec, r in fam.slices.items()]
    return list(dict.fromkeys(pairs))


def _estimate(
    chal: _Side,
    champ: _Side | None,
    metric: str,
    slice_name: str,
    higher: bool,
    cfg: GateConfig,
    point: dict[str, dict[str, float]],
) -> Estimate | None:
    if metric in point.get("challenger", {}) or metric in point.get("champion", {}):
        if metric not in point.get("challenger", {}) or slice_name != "all":
            return None
        value = point["challenger"][metric]
        est = Estimate(metric, slice_name, chal.n, value, higher_is_better=higher, kind="point")
        if champ is not None and metric in point.get("champion", {}):
            base = point["champion"][metric]
            imp = (value - base) * (1 if higher else -1)
            rel = imp / abs(base) if abs(base) > _EPS else None
            est.champion, est.improvement, est.low, est.high = base, imp, imp, imp
            est.rel, est.rel_low, est.rel_high = rel, rel, rel
        return est
    if not chal.computable(metric) or chal.n == 0:
        return None
    ones = np.ones((1, chal.n))
    est = Estimate(
        metric, slice_name, chal.n, float(chal.values(metric, ones)[0]), higher_is_better=higher
    )
    if champ is None:
        return est
    sign = 1.0 if higher else -1.0
    est.champion = float(champ.values(metric, ones)[0])
    est.improvement = sign * (est.challenger - est.champion)
    est.rel = est.improvement / abs(est.champion) if abs(est.champion) > _EPS else None
    diffs, rels = [], []
    for weights in resample_weights(chal.n, cfg.bootstrap_resamples, cfg.seed):
        a, b = chal.values(metric, weights), champ.values(metric, weights)
        diffs.append(sign * (a - b))
        with np.errstate(invalid="ignore", divide="ignore"):
            rels.append(sign * (a - b) / np.abs(b))
    est.low, est.high = percentile_interval(np.concatenate(diffs), cfg.confidence)
    if est.rel is not None:
        est.rel_low, est.rel_high = percentile_interval(np.concatenate(rels), cfg.confidence)
    return est


def _judge(
    rule: MetricRule,
    est: Estimate | None,
    role: str,
    slice_name: str,
    first_run: bool,
    strict_primary: bool,
) -> RuleResult:
    """Apply one rule's value and change thresholds; every check leaves a readable line."""
    result = RuleResult(role, rule.metric, slice_name, passed=True)
    where = f"{role} {rule.metric}" + ("" if slice_name == "all" else f" [{slice_name}]")
    if first_run and not rule.has_value_threshold():
        result.passed = None
        result.checks.append(f"SKIP {where}: only change thresholds (first run, no champion)")
        return result
    if est is None:
        result.passed = False
        result.checks.append(f"FAIL {where}: metric not available in the evaluation data")
        return result
    ok: list[bool] = []
    if rule.min_value is not None:
        ok.append(est.challenger >= rule.min_value)
        result.checks.append(
            f"{'PASS' if ok[-1] else 'FAIL'} {where}: value {est.challenger:.4f}"
            f" {'>=' if ok[-1] else '<'} min {rule.min_value}"
        )
    if rule.max_value is not None:
        ok.append(est.challenger <= rule.max_value)
        result.checks.append(
            f"{'PASS' if ok[-1] else 'FAIL'} {where}: value {est.challenger:.4f}"
            f" {'<=' if ok[-1] else '>'} max {rule.max_value}"
        )
    changes = [
        ("abs", rule.min_abs_change, est.improvement, est.low),
        ("rel", rule.min_rel_change, est.rel, est.rel_low),
    ]
    if role == "primary" and not first_run and not rule.has_change_threshold():
        # A champion exists: the challenger has to be strictly better somewhere to replace it.
        changes[0] = ("abs", 0.0, est.improvement, est.low)
        result.checks.append(f"NOTE {where}: no change threshold; requiring improvement > 0")
    for kind, threshold, point, low in changes:
        if threshold is None:
            continue
        if first_run:
            result.checks.append(f"SKIP {where}: {kind} change threshold (first run, no champion)")
            continue
        bound = point if rule.judge_on == "point" else low
        label = "improvement" if rule.judge_on == "point" else "lower bound of improvement"
        if bound is None:
            ok.append(False)
            result.checks.append(f"FAIL {where}: {kind} {label} undefined (champion value 0?)")
            continue
        # The primary must clear a non-negative threshold strictly (a tie is not an improvement).
        passed = bound > threshold if (strict_primary and threshold >= 0) else bound >= threshold
        ok.append(passed)
        result.checks.append(
            f"{'PASS' if passed else 'FAIL'} {where}: {kind} {label} "
            f"{bound:+.4f} vs threshold {threshold:+.4f}"
        )
    if not ok:
        result.passed = None
        result.checks.append(f"SKIP {where}: nothing to judge")
    else:
        result.passed = all(ok)
    return result


def decide(
    challenger: pd.DataFrame,
    champion: pd.DataFrame | None,
    family: str,
    fam: FamilyGateConfig,
    cfg: GateConfig,
    point_metrics: dict[str, dict[str, float]] | None = None,
    behaviour: dict[str, Any] | None = None,
) -> GateDecision:
    """The gate decision on two evaluation frames (champion None = first run). Pure: no I/O.

    Promote only if the primary's interval lower bound clears its change threshold and every
    guardrail, judged slice and the behavioural comparison passes; no thresholds -> never;
    first run -> value thresholds only; a tie on the primary keeps the champion.
    ``behaviour`` is :func:`behaviour_outcome`'s dict (None: not run).
    """
    get_family(family)
    point = point_metrics or {}
    first_run = champion is None
    if champion is not None:
        challenger, champion = pair_frames(challenger, champion, family)
    classes: list[str] = []
    if family == "intent":
        frames = [challenger] + ([champion] if champion is not None else [])
        for column in INTENT_COLUMNS:
            for frame in frames:
                if column not in frame.columns:
                    raise InputError(f"intent evaluation frame lacks column {column!r}")
        classes = sorted({str(v) for f in frames for c in ("label", "predicted") for v in f[c]})
    chal_side = _Side(challenger, family, classes)
    champ_side = None if champion is None else _Side(champion, family, classes)

    rule_for: dict[tuple[str, str], MetricRule] = {}
    if fam.primary:
        rule_for[("all", fam.primary.metric)] = fam.primary
    for rule in fam.guardrails:
        rule_for.setdefault(("all", rule.metric), rule)
    for spec, rule in fam.slices.items():
        rule_for.setdefault((spec, rule.metric), rule)

    estimates: dict[tuple[str, str], Estimate | None] = {}
    sides: dict[str, tuple[_Side, _Side | None]] = {"all": (chal_side, champ_side)}
    report_slices = [
        spec
        for spec in get_family(family).report_slices
        if (spec.split("=", 1)[0] if "=" in spec else spec) in challenger.columns
    ]
    available = chal_side.available() + [
        metric for metric in point.get("challenger", {}) if metric not in chal_side.available()
    ]
    for spec, metric in _wanted(fam, available, report_slices):
        if spec not in sides:
            mask = slice_mask(challenger, spec)
            sides[spec] = (chal_side.subset(mask), champ_side.subset(mask) if champ_side else None)
        higher = (
            rule_for[(spec, metric)].higher_is_better
            if (spec, metric) in rule_for
            else (metric != "ece")
        )
        estimates[(spec, metric)] = _estimate(*sides[spec], metric, spec, higher, cfg, point)

    rules: list[RuleResult] = []
    reasons: list[str] = []
    if fam.primary:
        rules.append(
            _judge(
                fam.primary,
                estimates[("all", fam.primary.metric)],
                "primary",
                "all",
                first_run,
                strict_primary=True,
            )
        )
    rules += [
        _judge(r, estimates[("all", r.metric)], "guardrail", "all", first_run, False)
        for r in fam.guardrails
    ]
    for spec, rule in fam.slices.items():
        n_slice = sides[spec][0].n
        if n_slice < fam.min_slice_rows:
            rules.append(
                RuleResult(
                    "slice",
                    rule.metric,
                    spec,
                    None,
                    [
                        f"SKIP slice {rule.metric} [{spec}]: {n_slice} rows < min_slice_rows "
                        f"{fam.min_slice_rows} (reported, not judged)"
                    ],
                )
            )
            continue
        rules.append(_judge(rule, estimates[(spec, rule.metric)], "slice", spec, first_run, False))
    if behaviour is not None:
        rules.append(
            RuleResult(
                "behaviour", "behavioural checks", "all", behaviour["passed"], behaviour["checks"]
            )
        )

    tie = False
    primary_est = estimates.get(("all", fam.primary.metric)) if fam.primary else None
    if fam.primary is None or not (
        fam.primary.has_value_threshold() or fam.primary.has_change_threshold()
    ):
        decision = "reject"
        reasons.append(f"no thresholds configured for {family}'s primary metric: never promote")
    elif first_run and not any(
        r.has_value_threshold() for r in [fam.primary, *fam.guardrails, *fam.slices.values()]
    ):
        decision = "reject"
        reasons.append(
            "first run (no champion) but no value threshold configured: cannot judge "
            "absolute quality, not promoting"
        )
    else:
        failed = [c for r in rules if r.passed is False for c in r.checks if c.startswith("FAIL")]
        if (
            not first_run
            and primary_est is not None
            and primary_est.improvement is not None
            and abs(primary_est.improvement) <= _EPS
        ):
            tie = True
            decision = "keep_champion"
            reasons.append(
                f"tie: challenger equals champion on {fam.primary.metric} "
                f"({primary_est.challenger:.4f}); keeping the champion"
            )
            reasons += failed
        elif failed:
            decision = "reject"
            reasons += failed
        else:
            decision = "promote"
            reasons.append(
                "first run: no champion yet, value thresholds pass"
                if first_run
                else "primary improvement clears its threshold; all guardrails pass"
            )
    mc = None
    if family == "intent" and champion is not None:
        mc = mcnemar(challenger["correct"].to_numpy(), champion["correct"].to_numpy())
    return GateDecision(
        family=family,
        decision=decision,
        first_run=first_run,
        tie=tie,
        reasons=reasons,
        rules=rules,
        estimates=[e for e in estimates.values() if e is not None],
        n_rows=len(challenger),
        confidence=cfg.confidence,
        resamples=cfg.bootstrap_resamples,
        mcnemar=mc,
        behaviour=behaviour,
    )


# ----------------------------------------------------------------------------- I/O wrapper


def measure_latency(model: Any, batch: pd.DataFrame, params: dict[str, Any] | None) -> float:
    """Milliseconds per row for one warm batch (best of three, to damp a shared CPU)."""
    model.predict(batch.head(2), params=params) if params else model.predict(batch.head(2))
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        model.predict(batch, params=params) if params else model.predict(batch)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / max(len(batch), 1)


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
    from ml.recommender.scoring import TOP_COLUMN

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
    from ml.recommender.scoring import as_recommender

    rec = as_recommender(champion_model)
    if rec is None:
        notes.append("slice new_item_target: unknown (the champion exposes no catalogue)")
        return notes
    known = set(rec.item_ids)
    ids = test.items["item_id"].astype(str).to_numpy()
    for frame in frames:
        frame["new_item_target"] = [ids[t] not in known for t in frame["target"]]
    return notes


def suite_file(path: str) -> Path:
    """A suite path as configured: relative to the project folder, else to this checkout."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.is_file():
        return candidate
    return Path(__file__).resolve().parents[1] / path


def behaviour_report(fam: Family, suite_path: str, model: Any, test: Any, params: Params) -> Any:
    """One model through the family's behavioural suite (:mod:`ml.behaviour`)."""
    from ml import behaviour

    suite = behaviour.load_suite(suite_file(suite_path))
    if fam.name == "intent":
        from ml.intent.data import load_labels
        from ml.intent.scoring import predict_texts

        def predict(texts: list[str]) -> list[str]:
            return predict_texts(model, texts)["label"].astype(str).tolist()

        return behaviour.run_intent_suite(
            suite,  # type: ignore[arg-type]
            predict,
            known_labels=load_labels(params.paths.processed),
            oos_label=params.intent.oos_label,
        )
    from ml.recommender.features import item_texts
    from ml.recommender.scoring import unwrap

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
    from ml.behaviour import compare_behaviour

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


def load_for_gate(uri: str, role: str) -> Any:
    """A registered model for the gate; one that does not load is a one-line error naming it
    (the champion is untouched: the gate never moves an alias)."""
    from ml import registry
    from ml.errors import ShopflowError

    try:
        return registry.load_model(uri)
    except ShopflowError:
        raise
    except Exception as exc:  # MLflow and the model's own load_context raise many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"the {role} {uri} does not load from the registry: {first}") from exc


def run_gate(family: str, params: Params, client: Any = None) -> dict[str, Any]:
    """Gate the challenger in registration.json against the current champion: load both from
    the registry, score both with the family's scorer, run the behavioural checks, decide;
    write and log the reports; tag the challenger's model version. Returns a summary."""
    from ml import registry
    from ml.gate_reports import write_reports
    from ml.preflight import stack_errors_explained

    fam = get_family(family)
    reg = read_registration(params.paths.models, family)
    client = client or registry.get_client(params)
    name = str(reg["model_name"])
    version = str(reg["version"])
    champion_mv = registry.get_alias(client, name, registry.CHAMPION)
    context: dict[str, Any] = {
        "model": name,
        "challenger_version": version,
        "challenger_run": reg["run_id"],
        "champion_version": str(champion_mv.version) if champion_mv else None,
    }
    if champion_mv is not None and str(champion_mv.version) == version:
        # A re-run after promotion: nothing to compare, and nothing to fail a DAG over.
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
    test = fam.load_frozen_test(params)
    chal_model = load_for_gate(f"models:/{name}/{version}", "challenger")
    challenger = fam.score(chal_model, test, params)
    point: dict[str, dict[str, float]] = {
        "challenger": point_metrics(fam, challenger, test),
        "champion": {},
    }
    champion_frame = champ_model = None
    if champion_mv is not None:
        champ_model = load_for_gate(f"models:/{name}@{registry.CHAMPION}", "champion")
        champion_frame = fam.score(champ_model, test, params)
        point["champion"] = point_metrics(fam, champion_frame, test)
        context["notes"] = champion_slices(
            fam, [challenger, champion_frame], champion_mv, champ_model, test
        )
        if params.gate.latency_rows:
            batch, call_params = latency_batch(fam, test, params.gate.latency_rows)
            point["champion"]["latency_ms"] = measure_latency(champ_model, batch, call_params)
            point["challenger"]["latency_ms"] = measure_latency(chal_model, batch, call_params)
    behaviour = run_behaviour(fam, params, test, chal_model, champ_model)
    reports = behaviour.pop("_reports") if behaviour else None
    fam_cfg = getattr(params.gate, family)
    decision = decide(
        challenger, champion_frame, family, fam_cfg, params.gate, point, behaviour=behaviour
    )
    paths = write_reports(decision, params.paths.reports / family, context, behaviour=reports)
    with stack_errors_explained(f"logging the gate reports to run {reg['run_id']}"):
        for path in paths.values():
            client.log_artifact(reg["run_id"], path, artifact_path="gate")
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
        "gate.champion_version": str(context["champion_version"]),
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
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    log.info("gate %s v%s: %s", name, version, decision.decision)
    return {
        "family": family,
        "model": name,
        "version": version,
        "decision": decision.decision,
        "promote": decision.promote,
        "first_run": decision.first_run,
        "tie": decision.tie,
        "reasons": decision.reasons,
        "reports": paths,
    }
