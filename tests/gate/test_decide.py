"""The pure gate decision on synthetic paired frames: every rule, tie, first run, statistics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.core.config import FamilyGateConfig, GateConfig, MetricRule
from ml.core.errors import InputError
from ml.core.stats import resample_weights
from ml.release.gate.reports import write_reports
from ml.release.gate.rules import _Side, decide, mcnemar

LABELS = ["track_order", "get_refund", "cancel_order", "payment_issue"]
CFG = GateConfig(bootstrap_resamples=1000, seed=1)


def intent_frame(
    correct: np.ndarray, confidence: float | np.ndarray = 0.8, seed: int = 0
) -> pd.DataFrame:
    """Predictions where ``correct`` decides right/wrong; wrong ones pick the next label."""
    n = len(correct)
    labels = np.array(LABELS)[np.arange(n) % len(LABELS)]
    wrong = np.array(LABELS)[(np.arange(n) + 1) % len(LABELS)]
    conf = np.broadcast_to(np.asarray(confidence, dtype=float), (n,))
    return pd.DataFrame(
        {
            "example_id": [f"ex{i:05d}" for i in range(n)],
            "label": labels,
            "predicted": np.where(correct, labels, wrong),
            "raw_predicted": np.where(correct, labels, wrong),
            "confidence": conf,
            "correct": correct.astype(bool),
            "raw_correct": correct.astype(bool),
        }
    )


def correctness(n: int, accuracy: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < accuracy


def intent_cfg(**primary: float) -> FamilyGateConfig:
    rule = (
        MetricRule(metric="accuracy", **primary)
        if primary
        else MetricRule(metric="accuracy", min_value=0.5, min_abs_change=0.0)
    )
    return FamilyGateConfig(primary=rule)


def test_first_run_promotes_when_value_thresholds_pass() -> None:
    chal = intent_frame(correctness(400, 0.8, 1))
    fam = intent_cfg().model_copy(
        update={
            "guardrails": [
                MetricRule(metric="latency_ms", min_rel_change=-0.5, higher_is_better=False)
            ]
        }
    )
    result = decide(chal, None, "intent", fam, CFG)
    assert result.decision == "promote" and result.first_run
    assert "first run" in result.reasons[0]
    checks = " ".join(result.rules[0].checks)
    assert "SKIP" in checks and "first run" in checks  # change threshold visibly not applied
    assert result.rules[1].passed is None  # a change-only guardrail has nothing to compare to


def test_first_run_rejects_below_min_value() -> None:
    chal = intent_frame(correctness(400, 0.3, 1))
    result = decide(chal, None, "intent", intent_cfg(), CFG)
    assert result.decision == "reject"
    assert any("FAIL primary accuracy" in r and "min 0.5" in r for r in result.reasons)


def test_first_run_without_value_threshold_never_promotes() -> None:
    chal = intent_frame(correctness(400, 0.9, 1))
    result = decide(chal, None, "intent", intent_cfg(min_abs_change=0.0), CFG)
    assert result.decision == "reject"
    assert "no value threshold" in result.reasons[0]


def test_no_thresholds_never_promotes() -> None:
    chal = intent_frame(correctness(400, 0.95, 1))
    champ = intent_frame(correctness(400, 0.5, 2))
    for fam in (FamilyGateConfig(), FamilyGateConfig(primary=MetricRule(metric="accuracy"))):
        result = decide(chal, champ, "intent", fam, CFG)
        assert result.decision == "reject"
        assert "no thresholds configured" in result.reasons[0]


def test_clear_improvement_promotes_and_worse_is_rejected() -> None:
    n = 2000
    champ = intent_frame(correctness(n, 0.75, 3))
    better = intent_frame(correctness(n, 0.85, 4))
    result = decide(better, champ, "intent", intent_cfg(), CFG)
    assert result.decision == "promote", result.reasons
    est = next(e for e in result.estimates if e.metric == "accuracy")
    assert (
        est.low is not None
        and est.low > 0
        and est.improvement == pytest.approx(better["correct"].mean() - champ["correct"].mean())
    )
    worse = decide(champ, better, "intent", intent_cfg(), CFG)
    assert worse.decision == "reject"
    assert any(r.startswith("FAIL primary accuracy: abs lower bound") for r in worse.reasons)


def test_improvement_inside_the_noise_is_rejected() -> None:
    champ_correct = correctness(300, 0.8, 5)
    chal_correct = champ_correct.copy()
    flip = np.flatnonzero(~chal_correct)[:2]  # two more right answers: real but tiny
    chal_correct[flip] = True
    result = decide(
        intent_frame(chal_correct), intent_frame(champ_correct), "intent", intent_cfg(), CFG
    )
    est = next(e for e in result.estimates if e.metric == "accuracy")
    assert est.improvement > 0 and est.low is not None and est.low <= 0
    assert result.decision == "reject" and not result.tie


def test_guardrail_failure_rejects_a_better_model() -> None:
    n = 2000
    champ = intent_frame(correctness(n, 0.75, 3), confidence=0.75)
    # More accurate but claims certainty everywhere: calibration error ~0.15.
    chal = intent_frame(correctness(n, 0.85, 4), confidence=1.0)
    fam = FamilyGateConfig(
        primary=MetricRule(metric="accuracy", min_value=0.5, min_abs_change=0.0),
        guardrails=[MetricRule(metric="ece", max_value=0.1, higher_is_better=False)],
    )
    result = decide(chal, champ, "intent", fam, CFG)
    assert result.decision == "reject"
    assert result.rules[0].passed is True
    assert any("FAIL guardrail ece" in r for r in result.reasons)


def test_tie_keeps_champion() -> None:
    frame = intent_frame(correctness(500, 0.8, 6))
    result = decide(frame.copy(), frame, "intent", intent_cfg(), CFG)
    assert result.decision == "keep_champion" and result.tie
    assert result.reasons[0].startswith("tie:")


def test_unpaired_frames_are_refused() -> None:
    chal = intent_frame(correctness(100, 0.8, 1))
    with pytest.raises(InputError, match="same test rows"):
        decide(chal, chal.iloc[:90], "intent", intent_cfg(), CFG)
    other = chal.assign(label=chal["label"].iloc[::-1].to_numpy())
    with pytest.raises(InputError, match="not the same frozen test split"):
        decide(chal, other, "intent", intent_cfg(), CFG)


def test_gate_metrics_are_the_evaluation_metrics() -> None:
    """The gate's point values are ml.models.intent.scoring.frame_metrics (what metrics.json holds),
    bit for bit; its resampled values are the same functions under bootstrap weights."""
    from ml.models.intent.scoring import frame_metrics

    frame = intent_frame(correctness(200, 0.7, 8), confidence=np.linspace(0.2, 1.0, 200))
    side = _Side(frame, "intent", sorted(LABELS))
    expected = frame_metrics(frame)
    ones = np.ones((1, 200))
    for metric in ("accuracy", "macro_f1", "ece", "mean_confidence"):
        assert side.values(metric, ones)[0] == expected[metric], metric
    weights = next(resample_weights(200, 3, seed=3))
    for b in range(3):
        rows = frame.loc[np.repeat(np.arange(200), weights[b].astype(int))]
        assert side.values("macro_f1", weights)[b] == pytest.approx(
            frame_metrics(rows.reset_index(drop=True))["macro_f1"]
        )


def test_mcnemar_counts_discordant_pairs() -> None:
    champ = np.array([1, 1, 1, 0, 0, 0, 1, 0] * 10, dtype=bool)
    chal = np.array([1, 0, 1, 1, 1, 1, 1, 0] * 10, dtype=bool)
    result = mcnemar(chal, champ)
    assert (result["champion_only"], result["challenger_only"]) == (10, 30)
    assert result["statistic"] == pytest.approx((20 - 1) ** 2 / 40)
    assert 0 < result["p_value"] < 0.01


def recommender_frame(ndcg: np.ndarray, cold: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_idx": np.arange(len(ndcg)),
            "target": np.arange(len(ndcg)),
            "rank": np.where(ndcg > 0, 1.0, np.inf),
            "ndcg@10": ndcg,
            "recall@20": (ndcg > 0).astype(float),
            "cold_start": cold,
        }
    )


def test_slice_regression_rejects_and_small_slices_are_not_judged() -> None:
    n = 3000
    rng = np.random.default_rng(9)
    cold = np.arange(n) < 400
    champ = rng.random(n) * 0.5
    chal = champ + 0.05  # better for everyone...
    chal[cold] = champ[cold] - 0.1  # ...except cold-start users
    fam = FamilyGateConfig(
        primary=MetricRule(metric="ndcg@10", min_value=0.01, min_abs_change=0.0),
        slices={"cold_start": MetricRule(metric="ndcg@10", min_abs_change=-0.02)},
    )
    result = decide(
        recommender_frame(chal, cold), recommender_frame(champ, cold), "recommender", fam, CFG
    )
    assert result.decision == "reject"
    assert any("FAIL slice ndcg@10 [cold_start]" in r for r in result.reasons)
    small = fam.model_copy(update={"min_slice_rows": 500})
    result = decide(
        recommender_frame(chal, cold), recommender_frame(champ, cold), "recommender", small, CFG
    )
    assert result.decision == "promote"
    assert result.rules[-1].passed is None and "not judged" in result.rules[-1].checks[0]


def test_point_metric_guardrail_uses_measured_latency() -> None:
    frame_champ = intent_frame(correctness(2000, 0.75, 3))
    frame_chal = intent_frame(correctness(2000, 0.85, 4))
    fam = FamilyGateConfig(
        primary=MetricRule(metric="accuracy", min_value=0.5, min_abs_change=0.0),
        guardrails=[
            MetricRule(
                metric="latency_ms", min_rel_change=-0.5, higher_is_better=False, judge_on="point"
            )
        ],
    )
    slow = {"champion": {"latency_ms": 1.0}, "challenger": {"latency_ms": 3.0}}
    assert decide(frame_chal, frame_champ, "intent", fam, CFG, slow).decision == "reject"
    ok = {"champion": {"latency_ms": 1.0}, "challenger": {"latency_ms": 1.2}}
    assert decide(frame_chal, frame_champ, "intent", fam, CFG, ok).decision == "promote"
    missing = decide(frame_chal, frame_champ, "intent", fam, CFG)
    assert any("not available" in r for r in missing.reasons)


def test_reports_are_written(tmp_path) -> None:
    champ = intent_frame(correctness(500, 0.75, 3))
    chal = intent_frame(correctness(500, 0.85, 4))
    result = decide(chal, champ, "intent", intent_cfg(), CFG)
    paths = write_reports(result, tmp_path, {"model": "m", "challenger_version": "2"})
    data = json.loads((tmp_path / "gate.json").read_text())
    assert data["decision"] == result.decision and data["mcnemar"]["p_value"] >= 0
    assert "| all | accuracy |" in (tmp_path / "gate.md").read_text()
    assert "<table>" in (tmp_path / "gate.html").read_text()
    assert (tmp_path / "gate.png").read_bytes()[:4] == b"\x89PNG"
    assert set(paths) == {"json", "md", "html", "png"}


def test_behaviour_failure_rejects_a_better_model_and_names_the_cases() -> None:
    champ = intent_frame(correctness(2000, 0.75, 3))
    chal = intent_frame(correctness(2000, 0.85, 4))
    failing = {
        "passed": False,
        "checks": [
            "FAIL behaviour (intent): the challenger fails 9 of 600 cases applicable to both, "
            "the champion 2 (+7; at most 2 more allowed)",
            "FAIL behaviour minimum_functionality: the challenger fails 7 case(s) the champion "
            "passes: track_order-1 ('where is my order': expected track_order, got complaint)",
        ],
    }
    result = decide(chal, champ, "intent", intent_cfg(), CFG, behaviour=failing)
    assert result.decision == "reject"
    assert any("track_order-1" in r for r in result.reasons)
    passing = {**failing, "passed": True, "checks": ["PASS behaviour (intent): ..."]}
    assert decide(chal, champ, "intent", intent_cfg(), CFG, behaviour=passing).promote
