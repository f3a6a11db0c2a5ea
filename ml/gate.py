"""Offline A/B gate: is the challenger better than the champion on the same frozen test data?

The decision (:func:`decide`) is a pure function of two paired evaluation frames and the family's
:class:`~ml.config.FamilyGateConfig`; :func:`run_gate` does the I/O around it (registration.json,
re-scoring the champion from the registry, reports, MLflow logging and tags).

Statistics: a paired bootstrap over rows (examples for intent, users for the recommender). Each
resample is a vector of row counts, so every metric is a weighted sum and a whole chunk of
resamples is one matrix product (vectorised numpy, no Python loop per resample).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.errors import InputError
from ml.gate_reports import write_reports

if TYPE_CHECKING:
    from ml.config import FamilyGateConfig, GateConfig, MetricRule, Params

log = logging.getLogger(__name__)

FAMILIES = ("intent", "recommender")
KEY_COLUMN = {"intent": "example_id", "recommender": "user_idx"}
EVAL_FILE = {"intent": "predictions.parquet", "recommender": "per_user.parquet"}
INTENT_METRICS = ("accuracy", "macro_f1", "ece", "mean_confidence")
# Side metrics measured outside the frames (no interval: one timing per model).
POINT_METRICS = ("latency_ms", "coverage")
RECOMMENDER_METRIC_PREFIXES = ("recall@", "ndcg@", "hit@", "precision@", "mrr")
DECISIONS = ("promote", "reject", "keep_champion")
_EPS = 1e-12


# ----------------------------------------------------------------------------- data classes


@dataclass
class Estimate:
    """One metric on one slice: both values, the improvement and its bootstrap interval.

    ``improvement`` is challenger - champion, sign-flipped when lower is better, so positive is
    always good; ``rel_*`` divide it by |champion|.
    """

    metric: str
    slice: str
    n_rows: int
    challenger: float
    champion: float | None = None
    improvement: float | None = None
    low: float | None = None
    high: float | None = None
    rel: float | None = None
    rel_low: float | None = None
    rel_high: float | None = None
    higher_is_better: bool = True
    # bootstrap: low/high are a paired-bootstrap interval; point: a single measurement
    # (latency, coverage), low/high repeat the point value so change rules can still be applied.
    kind: str = "bootstrap"


@dataclass
class RuleResult:
    """Outcome of one configured rule; ``passed`` is None when the rule was not judged."""

    role: str  # primary | guardrail | slice
    metric: str
    slice: str
    passed: bool | None
    checks: list[str] = field(default_factory=list)


@dataclass
class GateDecision:
    family: str
    decision: str
    first_run: bool
    tie: bool
    reasons: list[str]
    rules: list[RuleResult]
    estimates: list[Estimate]
    n_rows: int
    confidence: float
    resamples: int
    mcnemar: dict[str, float] | None = None

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["promote"] = self.promote
        return data


# ----------------------------------------------------------------------------- pairing


def pair_frames(
    challenger: pd.DataFrame, champion: pd.DataFrame, family: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align two evaluation frames row by row on the family key; refuse anything not paired."""
    key = KEY_COLUMN[family]
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
    truth = "label" if family == "intent" else "target"
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
    """One model's per-row arrays, from which any metric is a function of row weights W (B, n)."""

    def __init__(self, frame: pd.DataFrame, family: str, classes: list[str], ece_bins: int):
        self.family = family
        self.frame = frame
        self.n = len(frame)
        if family == "intent":
            index = {c: i for i, c in enumerate(classes)}
            label = frame["label"].astype(str).map(index).to_numpy()
            pred = frame["predicted"].astype(str).map(index).to_numpy()
            eye = np.eye(len(classes), dtype=np.float64)
            self.correct = frame["correct"].astype(float).to_numpy()
            self.confidence = frame["confidence"].astype(float).to_numpy()
            self.label_hot = eye[label]
            self.pred_hot = eye[pred]
            self.tp_hot = self.label_hot * self.correct[:, None]
            bins = np.clip((self.confidence * ece_bins).astype(int), 0, ece_bins - 1)
            bin_hot = np.eye(ece_bins)[bins]
            # ECE = sum over bins |sum(conf) - sum(correct)| / n: both sums are weighted sums.
            self.bin_gap = bin_hot * (self.confidence - self.correct)[:, None]

    def subset(self, mask: np.ndarray) -> _Side:
        other = object.__new__(_Side)
        other.family, other.n = self.family, int(mask.sum())
        other.frame = self.frame.loc[mask].reset_index(drop=True)
        for name in ("correct", "confidence", "label_hot", "pred_hot", "tp_hot", "bin_gap"):
            if hasattr(self, name):
                setattr(other, name, getattr(self, name)[mask])
        return other

    def available(self) -> list[str]:
        """Metrics reported for every gate run (rules may name any numeric column besides)."""
        if self.family == "intent":
            return list(INTENT_METRICS)
        return [c for c in self.frame.columns if c.startswith(RECOMMENDER_METRIC_PREFIXES)]

    def computable(self, metric: str) -> bool:
        if metric in self.available():
            return True
        column = self.frame.get(metric)
        return (
            self.family == "recommender"
            and column is not None
            and pd.api.types.is_numeric_dtype(column)
        )

    def values(self, metric: str, weights: np.ndarray) -> np.ndarray:
        """The metric under each row of ``weights`` (B, n) -> (B,); nan for an empty resample."""
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.family == "intent":
                if metric == "accuracy":
                    return weights @ self.correct / total
                if metric == "mean_confidence":
                    return weights @ self.confidence / total
                if metric == "ece":
                    return np.abs(weights @ self.bin_gap).sum(axis=1) / total
                if metric == "macro_f1":
                    tp = weights @ self.tp_hot
                    denom = weights @ self.label_hot + weights @ self.pred_hot
                    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)
                    # Average over the classes present in truth or predictions (as sklearn does).
                    present = np.isfinite(f1)
                    return np.where(
                        present.any(axis=1),
                        np.nansum(f1, axis=1) / np.maximum(present.sum(axis=1), 1),
                        np.nan,
                    )
            column = self.frame[metric].astype(float).fillna(0.0).to_numpy()
            return weights @ column / total


def _resample_weights(n: int, resamples: int, seed: int, chunk: int = 256) -> Iterator[np.ndarray]:
    """Bootstrap row counts, ``chunk`` resamples at a time, built with one bincount per chunk."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        done += size


def _interval(samples: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None, None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


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


def _wanted(fam: FamilyGateConfig, available: list[str]) -> list[tuple[str, str]]:
    """(slice, metric) pairs to estimate: every overall metric for the report, plus ruled ones."""
    pairs = [("all", m) for m in available]
    rules = ([fam.primary] if fam.primary else []) + list(fam.guardrails)
    pairs += [("all", r.metric) for r in rules]
    pairs += [(s, r.metric) for s, r in fam.slices.items()]
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
    if metric in POINT_METRICS:
        if metric not in point.get("challenger", {}):
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
    for weights in _resample_weights(chal.n, cfg.bootstrap_resamples, cfg.seed):
        a, b = chal.values(metric, weights), champ.values(metric, weights)
        diffs.append(sign * (a - b))
        with np.errstate(invalid="ignore", divide="ignore"):
            rels.append(sign * (a - b) / np.abs(b))
    est.low, est.high = _interval(np.concatenate(diffs), cfg.confidence)
    if est.rel is not None:
        est.rel_low, est.rel_high = _interval(np.concatenate(rels), cfg.confidence)
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
) -> GateDecision:
    """The gate decision on two evaluation frames (champion None = first run). Pure: no I/O.

    Promote only if the primary's interval lower bound clears its change threshold and every
    guardrail and judged slice passes; no thresholds -> never; first run -> value thresholds
    only; a tie on the primary keeps the champion.
    """
    if family not in FAMILIES:
        raise InputError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    point = point_metrics or {}
    first_run = champion is None
    if champion is not None:
        challenger, champion = pair_frames(challenger, champion, family)
    classes: list[str] = []
    if family == "intent":
        frames = [challenger] + ([champion] if champion is not None else [])
        for column in ("label", "predicted", "confidence", "correct"):
            for frame in frames:
                if column not in frame.columns:
                    raise InputError(f"intent evaluation frame lacks column {column!r}")
        classes = sorted({str(v) for f in frames for c in ("label", "predicted") for v in f[c]})
    chal_side = _Side(challenger, family, classes, cfg.ece_bins)
    champ_side = None if champion is None else _Side(champion, family, classes, cfg.ece_bins)

    rule_for: dict[tuple[str, str], MetricRule] = {}
    if fam.primary:
        rule_for[("all", fam.primary.metric)] = fam.primary
    for rule in fam.guardrails:
        rule_for.setdefault(("all", rule.metric), rule)
    for spec, rule in fam.slices.items():
        rule_for.setdefault((spec, rule.metric), rule)

    estimates: dict[tuple[str, str], Estimate | None] = {}
    sides: dict[str, tuple[_Side, _Side | None]] = {"all": (chal_side, champ_side)}
    for spec, metric in _wanted(fam, chal_side.available()):
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
    )


# ----------------------------------------------------------------------------- I/O wrapper


def read_registration(models_dir: Path, family: str) -> dict[str, Any]:
    """The challenger the training step registered: ``<models>/<family>/registration.json``."""
    path = models_dir / family / "registration.json"
    if not path.is_file():
        raise InputError(f"{path}: no registration.json; run `python -m ml train {family}` first")
    data = json.loads(path.read_text(encoding="utf-8"))
    missing = {"run_id", "version", "model_name"} - set(data)
    if missing:
        raise InputError(f"{path}: missing keys {sorted(missing)}")
    return data


def _metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...]) -> pd.DataFrame:
    """Per-user metrics from 1-based ranks (inf = absent); the recommender's own when present."""
    try:
        from ml.recommender.metrics import metrics_from_ranks
    except ImportError:
        ranks = np.asarray(ranks, dtype=float)
        out = {"rank": ranks}
        for k in ks:
            out[f"recall@{k}"] = (ranks <= k).astype(float)
            out[f"ndcg@{k}"] = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
        out["mrr"] = np.where(np.isfinite(ranks), 1.0 / ranks, 0.0)
        return pd.DataFrame(out)
    return metrics_from_ranks(ranks, ks=ks)


def rescore_intent(model: Any, test: pd.DataFrame) -> pd.DataFrame:
    """Champion predictions on the frozen intent test split, in the evaluation step's layout."""
    out = model.predict(test[["text"]].reset_index(drop=True))
    predicted = out["label"].astype(str).to_numpy()
    return pd.DataFrame(
        {
            "example_id": test["example_id"].to_numpy(),
            "label": test["label"].astype(str).to_numpy(),
            "predicted": predicted,
            "confidence": out["confidence"].astype(float).to_numpy(),
            "correct": predicted == test["label"].astype(str).to_numpy(),
        }
    )


def recommender_ranks(items: list[list[str]], targets: list[str]) -> np.ndarray:
    """1-based rank of each target in its top-K list; inf when absent."""
    ranks = np.full(len(targets), np.inf)
    for i, (top, target) in enumerate(zip(items, targets, strict=True)):
        top = list(top)
        if target in top:
            ranks[i] = top.index(target) + 1
    return ranks


def recommend(model: Any, histories: list[list[str]], k: int) -> list[list[str]]:
    """Top-``k`` item_ids per history through the recommender pyfunc contract."""
    out = model.predict(pd.DataFrame({"history": histories}), params={"k": k})
    return [[str(i) for i in top] for top in out["items"]]


def catalog_coverage(top_lists: list[list[str]], n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's top-K."""
    return len({i for top in top_lists for i in top}) / max(n_items, 1)


def rescore_recommender(
    top_lists: list[list[str]],
    test: pd.DataFrame,
    item_ids: pd.Series,
    challenger: pd.DataFrame,
) -> pd.DataFrame:
    """Per-user metrics of the champion's top-K lists on the frozen test users; slice columns
    come from the challenger's frame (they describe users, not models), so slices match."""
    lookup = item_ids.to_numpy()
    targets = [str(lookup[t]) for t in test["target"]]
    ranks = recommender_ranks(top_lists, targets)
    # Same cut-offs as the challenger's frame, so every metric it has exists for the champion.
    cutoffs = {
        int(c.split("@")[1]) for c in challenger.columns if c.startswith(("recall@", "ndcg@"))
    }
    ks = tuple(sorted(cutoffs or {10, 20}))
    frame = pd.DataFrame(
        {"user_idx": test["user_idx"].to_numpy(), "target": test["target"].to_numpy()}
    )
    frame = pd.concat([frame, _metrics_from_ranks(ranks, ks).reset_index(drop=True)], axis=1)
    slice_cols = [c for c in challenger.columns if c not in frame.columns]
    return frame.merge(challenger[["user_idx", *slice_cols]], on="user_idx", how="left")


def measure_latency(model: Any, batch: pd.DataFrame, params: dict[str, Any] | None) -> float:
    """Milliseconds per row for one warm batch (best of three, to damp a shared CPU)."""
    model.predict(batch.head(2), params=params) if params else model.predict(batch.head(2))
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        model.predict(batch, params=params) if params else model.predict(batch)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / max(len(batch), 1)


def _test_inputs(family: str, params: Params) -> tuple[pd.DataFrame, pd.Series | None]:
    processed = params.paths.processed
    if family == "intent":
        path = processed / "intent" / "test.parquet"
        if not path.is_file():
            raise InputError(f"{path}: frozen intent test split missing; run preprocess")
        return pd.read_parquet(path), None
    test_path, items_path = (
        processed / "recsys" / "test.parquet",
        processed / "recsys" / "items.parquet",
    )
    for path in (test_path, items_path):
        if not path.is_file():
            raise InputError(f"{path}: recommender test data missing; run preprocess")
    items = pd.read_parquet(items_path).sort_values("item_idx")
    return pd.read_parquet(test_path), items["item_id"].reset_index(drop=True)


def run_gate(family: str, params: Params, client: Any = None) -> dict[str, Any]:
    """Gate the challenger in registration.json against the current champion; write and log the
    reports; tag the challenger's model version. Returns a summary (the decision included)."""
    from ml import registry
    from ml.preflight import stack_errors_explained

    if family not in FAMILIES:
        raise InputError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    reg = read_registration(params.paths.models, family)
    eval_path = params.paths.reports / family / EVAL_FILE[family]
    if not eval_path.is_file():
        raise InputError(
            f"{eval_path}: challenger evaluation missing; run `python -m ml evaluate "
            f"{family}` first"
        )
    challenger = pd.read_parquet(eval_path)
    client = client or registry.get_client(params)
    name = str(reg["model_name"])
    version = str(reg["version"])
    champion_mv = registry.get_alias(client, name, registry.CHAMPION)
    fam_cfg = getattr(params.gate, family)
    context: dict[str, Any] = {
        "model": name,
        "challenger_version": version,
        "challenger_run": reg["run_id"],
        "champion_version": str(champion_mv.version) if champion_mv else None,
    }
    point: dict[str, dict[str, float]] = {"challenger": {}, "champion": {}}
    champion_frame = None
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
    test, item_ids = _test_inputs(family, params)
    k = params.recommender.top_k
    call_params = {"k": k} if family == "recommender" else None
    chal_model = None
    if family == "recommender":
        assert item_ids is not None
        lookup = item_ids.to_numpy()
        histories = [[str(lookup[i]) for i in h] for h in test["history"]]
        batch = pd.DataFrame({"history": histories[: params.gate.latency_rows]})
        # Catalogue coverage needs the top-K lists, which the per-user frame does not keep:
        # both models recommend for the same test users here (a point estimate, no interval).
        chal_model = registry.load_model(f"models:/{name}/{version}")
        point["challenger"]["coverage"] = catalog_coverage(
            recommend(chal_model, histories, k), len(item_ids)
        )
    else:
        batch = test[["text"]].head(params.gate.latency_rows)
    if champion_mv is not None:
        champ_model = registry.load_model(f"models:/{name}@{registry.CHAMPION}")
        if family == "intent":
            champion_frame = rescore_intent(champ_model, test)
        else:
            assert item_ids is not None
            top_lists = recommend(champ_model, histories, k)
            point["champion"]["coverage"] = catalog_coverage(top_lists, len(item_ids))
            champion_frame = rescore_recommender(top_lists, test, item_ids, challenger)
        if params.gate.latency_rows:
            chal_model = chal_model or registry.load_model(f"models:/{name}/{version}")
            point["champion"]["latency_ms"] = measure_latency(champ_model, batch, call_params)
            point["challenger"]["latency_ms"] = measure_latency(chal_model, batch, call_params)
    decision = decide(challenger, champion_frame, family, fam_cfg, params.gate, point)
    paths = write_reports(decision, params.paths.reports / family, context)
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
