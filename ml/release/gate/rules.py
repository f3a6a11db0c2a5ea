"""The offline A/B gate's decision rules: promote, reject or keep the champion.

Pure: paired evaluation frames in (challenger and champion scored on the same frozen test rows,
by :mod:`ml.release.gate.run`), a :class:`~ml.release.gate.decision.GateDecision` out. No
registry, file or MLflow access here, so every rule can be tested on synthetic frames.

:func:`decide` pairs the frames, estimates every wanted (slice, metric) with a paired bootstrap
interval, judges the primary metric, guardrails, slices and the behavioural comparison against
the family's :class:`~ml.core.config.FamilyGateConfig`, and turns the outcomes into a verdict.

Statistics: a paired bootstrap over rows (examples for intent, users for the recommender). Each
resample is a vector of row counts, so every metric is the same weighted function as its point
estimate and a whole chunk of resamples is one matrix product (:mod:`ml.core.stats`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core import metrics as m
from ml.core.errors import InputError
from ml.core.families import get_family
from ml.core.stats import percentile_interval, resample_weights
from ml.release.gate.decision import Estimate, GateDecision, RuleResult

if TYPE_CHECKING:
    from ml.core.config import FamilyGateConfig, GateConfig, MetricRule

INTENT_METRICS = ("accuracy", "macro_f1", "ece", "mean_confidence")
INTENT_COLUMNS = ("label", "predicted", "confidence", "correct", "raw_correct")
DECISIONS = ("promote", "reject", "keep_champion")
_EPS = 1e-12

# (slice, metric): "all" or a slice spec such as "cold_start" / "category=x", and a metric name.
SliceMetric = tuple[str, str]
# Point values without a per-row form, by side ("challenger" / "champion") then metric.
PointMetrics = dict[str, dict[str, float]]


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

    def __init__(self, frame: pd.DataFrame, family: str, classes: list[str]) -> None:
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

# Each slice's rows of both sides ("all": every row); the champion side is None on a first run.
SliceSides = dict[str, tuple[_Side, _Side | None]]


def _wanted(
    fam: FamilyGateConfig, available: list[str], report_slices: list[str]
) -> list[SliceMetric]:
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
    point: PointMetrics,
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


def _intent_classes(challenger: pd.DataFrame, champion: pd.DataFrame | None) -> list[str]:
    """Every label either side uses or predicts, after checking the intent columns exist."""
    frames = [challenger] + ([champion] if champion is not None else [])
    for column in INTENT_COLUMNS:
        for frame in frames:
            if column not in frame.columns:
                raise InputError(f"intent evaluation frame lacks column {column!r}")
    return sorted({str(v) for f in frames for c in ("label", "predicted") for v in f[c]})


def _rule_index(fam: FamilyGateConfig) -> dict[SliceMetric, MetricRule]:
    """The rule owning each ruled (slice, metric); the primary wins over a same-metric guardrail,
    so its direction (higher_is_better) is the one estimated."""
    rule_for: dict[SliceMetric, MetricRule] = {}
    if fam.primary:
        rule_for[("all", fam.primary.metric)] = fam.primary
    for rule in fam.guardrails:
        rule_for.setdefault(("all", rule.metric), rule)
    for spec, rule in fam.slices.items():
        rule_for.setdefault((spec, rule.metric), rule)
    return rule_for


def _estimate_all(
    challenger: pd.DataFrame,
    chal_side: _Side,
    champ_side: _Side | None,
    family: str,
    fam: FamilyGateConfig,
    cfg: GateConfig,
    point: PointMetrics,
) -> tuple[dict[SliceMetric, Estimate | None], SliceSides]:
    """Estimate every wanted (slice, metric); also returns the slices' rows it cut."""
    sides: SliceSides = {"all": (chal_side, champ_side)}
    rule_for = _rule_index(fam)
    # Report slices whose column this evaluation frame lacks are left out, not an error.
    report_slices = [
        spec
        for spec in get_family(family).report_slices
        if (spec.split("=", 1)[0] if "=" in spec else spec) in challenger.columns
    ]
    available = chal_side.available() + [
        metric for metric in point.get("challenger", {}) if metric not in chal_side.available()
    ]
    estimates: dict[SliceMetric, Estimate | None] = {}
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
    return estimates, sides


def _judge_slices(
    fam: FamilyGateConfig,
    estimates: dict[SliceMetric, Estimate | None],
    sides: SliceSides,
    first_run: bool,
) -> list[RuleResult]:
    """One result per slice rule; a slice under ``min_slice_rows`` is reported, not judged."""
    results: list[RuleResult] = []
    for spec, rule in fam.slices.items():
        n_slice = sides[spec][0].n
        if n_slice < fam.min_slice_rows:
            results.append(
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
        results.append(
            _judge(rule, estimates[(spec, rule.metric)], "slice", spec, first_run, False)
        )
    return results


def _judge_all(
    fam: FamilyGateConfig,
    estimates: dict[SliceMetric, Estimate | None],
    sides: SliceSides,
    first_run: bool,
    behaviour: dict[str, Any] | None,
) -> list[RuleResult]:
    """Every rule's outcome, in report order: primary, guardrails, slices, behaviour."""
    rules: list[RuleResult] = []
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
    rules += _judge_slices(fam, estimates, sides, first_run)
    if behaviour is not None:
        rules.append(
            RuleResult(
                "behaviour", "behavioural checks", "all", behaviour["passed"], behaviour["checks"]
            )
        )
    return rules


def _verdict(
    family: str,
    fam: FamilyGateConfig,
    rules: list[RuleResult],
    primary_est: Estimate | None,
    first_run: bool,
) -> tuple[str, bool, list[str]]:
    """(decision, tie, reasons) from the judged rules: unconfigured gates never promote, a tie
    on the primary keeps the champion, any FAIL rejects."""
    reasons: list[str] = []
    if fam.primary is None or not (
        fam.primary.has_value_threshold() or fam.primary.has_change_threshold()
    ):
        reasons.append(f"no thresholds configured for {family}'s primary metric: never promote")
        return "reject", False, reasons
    if first_run and not any(
        r.has_value_threshold() for r in [fam.primary, *fam.guardrails, *fam.slices.values()]
    ):
        reasons.append(
            "first run (no champion) but no value threshold configured: cannot judge "
            "absolute quality, not promoting"
        )
        return "reject", False, reasons
    failed = [c for r in rules if r.passed is False for c in r.checks if c.startswith("FAIL")]
    if (
        not first_run
        and primary_est is not None
        and primary_est.improvement is not None
        and abs(primary_est.improvement) <= _EPS
    ):
        reasons.append(
            f"tie: challenger equals champion on {fam.primary.metric} "
            f"({primary_est.challenger:.4f}); keeping the champion"
        )
        return "keep_champion", True, reasons + failed
    if failed:
        return "reject", False, failed
    reasons.append(
        "first run: no champion yet, value thresholds pass"
        if first_run
        else "primary improvement clears its threshold; all guardrails pass"
    )
    return "promote", False, reasons


def decide(
    challenger: pd.DataFrame,
    champion: pd.DataFrame | None,
    family: str,
    fam: FamilyGateConfig,
    cfg: GateConfig,
    point_metrics: PointMetrics | None = None,
    behaviour: dict[str, Any] | None = None,
) -> GateDecision:
    """The gate decision on two evaluation frames (champion None = first run). Pure: no I/O.

    Promote only if the primary's interval lower bound clears its change threshold and every
    guardrail, judged slice and the behavioural comparison passes; no thresholds -> never;
    first run -> value thresholds only; a tie on the primary keeps the champion.
    ``behaviour`` is :func:`ml.release.gate.run.run_behaviour`'s dict (None: not run).
    """
    get_family(family)
    point = point_metrics or {}
    first_run = champion is None
    if champion is not None:
        challenger, champion = pair_frames(challenger, champion, family)
    classes = _intent_classes(challenger, champion) if family == "intent" else []
    chal_side = _Side(challenger, family, classes)
    champ_side = None if champion is None else _Side(champion, family, classes)
    estimates, sides = _estimate_all(challenger, chal_side, champ_side, family, fam, cfg, point)
    rules = _judge_all(fam, estimates, sides, first_run, behaviour)
    primary_est = estimates.get(("all", fam.primary.metric)) if fam.primary else None
    decision, tie, reasons = _verdict(family, fam, rules, primary_est, first_run)
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
