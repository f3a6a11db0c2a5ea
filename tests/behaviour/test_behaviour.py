"""Behavioural suites: loading (and its errors), the intent and recommender runners on fakes and a
tiny real recommender, the champion/challenger comparison and the markdown section."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from ml.core.errors import InputError
from ml.core.schemas import OUT_OF_SCOPE, SHOP_INTENTS
from ml.release.gate.behaviour import (
    INTENT_SUITE,
    PERTURBATIONS,
    RECOMMENDER_SUITE,
    BehaviourReport,
    IntentSuite,
    RecommenderSuite,
    TestResult,
    compare_behaviour,
    expand_template,
    format_markdown,
    load_intent_suite,
    load_recommender_suite,
    load_suite,
    perturb,
    run_intent_suite,
    run_recommender_suite,
)

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------------
# A small intent suite whose outcome under KEYWORDS is worked out by hand below.
# --------------------------------------------------------------------------------------------

SMALL_INTENT: dict[str, Any] = {
    "suite": "intent",
    "seed": 7,
    "minimum_functionality": [
        {"id": "track-1", "text": "Where is my order?", "label": "track_order"},
        {"id": "cancel-1", "text": "Cancel my order", "label": "cancel_order"},
        {"id": "refund-1", "text": "I want a refund", "label": "get_refund"},
    ],
    "out_of_scope": [
        {"id": "oos-joke", "text": "Tell me a joke"},
        {"id": "oos-weather", "text": "What's the weather in Paris?"},
    ],
    "invariance": {
        "slots": {"order_id": ["#1", "ORD-2", "#3"], "product": ["Alpha lamp", "Beta kettle"]},
        "templates": [
            {"id": "tpl-track", "template": "where is my order {order_id}", "label": "track_order"},
            {
                "id": "tpl-stock",
                "template": "is the {product} in stock",
                "label": "product_availability",
            },
        ],
        "perturbations": ["lowercase", "uppercase"],
    },
}


def keyword_predict(texts: list[str]) -> list[str]:
    """Deliberately flawed rules: 'ORD-' and 'cancel' are matched case-sensitively, and jokes
    are taken for complaints."""
    out = []
    for text in texts:
        low = text.lower()
        if "ORD-" in text or "cancel" in text:
            out.append("cancel_order")
        elif "order" in low:
            out.append("track_order")
        elif "refund" in low:
            out.append("get_refund")
        elif "stock" in low:
            out.append("product_availability")
        elif "joke" in low:
            out.append("complaint")
        else:
            out.append(OUT_OF_SCOPE)
    return out


def write_yaml(tmp_path: Path, data: dict[str, Any], name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def small_suite(tmp_path: Path) -> IntentSuite:
    return load_intent_suite(write_yaml(tmp_path, SMALL_INTENT))


def counts(report: BehaviourReport) -> dict[str, tuple[int, int, int]]:
    return {t.name: (t.n_cases, t.n_failed, t.n_not_applicable) for t in report.tests}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def test_shipped_suites_load_and_name_only_shop_intents() -> None:
    intent = load_intent_suite(REPO / INTENT_SUITE)
    allowed = {*SHOP_INTENTS, OUT_OF_SCOPE}
    labels = [c.label for c in intent.minimum_functionality]
    labels += [t.label for t in intent.invariance.templates]
    assert set(labels) <= allowed, set(labels) - allowed
    per_intent = {i: labels[: len(intent.minimum_functionality)].count(i) for i in SHOP_INTENTS}
    assert min(per_intent.values()) >= 2, per_intent
    assert len(intent.out_of_scope) >= 8
    assert set(intent.invariance.perturbations) == set(PERTURBATIONS)
    assert {"order_id", "product"} <= set(intent.invariance.slots)

    rec = load_recommender_suite(REPO / RECOMMENDER_SUITE)
    assert 0 < rec.new_item_by_text.max_rank_percentile <= 0.1
    assert isinstance(load_suite(REPO / RECOMMENDER_SUITE), RecommenderSuite)


def test_shipped_intent_suite_runs_with_every_case_applicable() -> None:
    suite = load_intent_suite(REPO / INTENT_SUITE)
    calls: list[list[str]] = []

    def predict(texts: list[str]) -> list[str]:
        calls.append(texts)
        return ["track_order"] * len(texts)

    report = run_intent_suite(suite, predict, known_labels=set(SHOP_INTENTS))
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))
    assert report.n_not_applicable == 0
    # A constant predictor: only the track_order phrases pass; it is perfectly invariant.
    mft = report.test("minimum_functionality")
    assert mft.n_failed == mft.n_cases - 3
    assert report.test("out_of_scope").pass_rate == 0.0
    assert all(t.n_failed == 0 for t in report.tests if t.kind == "inv")
    assert all(t.n_cases > 0 for t in report.tests)


def bad_suite(tmp_path: Path, edit: Any) -> str:
    data = copy.deepcopy(SMALL_INTENT)
    edit(data)
    path = write_yaml(tmp_path, data, "bad.yaml")
    with pytest.raises(InputError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_unknown_key_names_file_and_field(tmp_path: Path) -> None:
    message = bad_suite(tmp_path, lambda d: d["minimum_functionality"][1].update(labl="x"))
    assert "minimum_functionality[1](id cancel-1).labl" in message
    assert "Extra inputs are not permitted" in message


def test_missing_field_names_file_and_field(tmp_path: Path) -> None:
    message = bad_suite(tmp_path, lambda d: d["minimum_functionality"][2].pop("label"))
    assert "minimum_functionality[2](id refund-1).label: Field required" in message
    message = bad_suite(tmp_path, lambda d: d.pop("seed"))
    assert ": seed: Field required" in message


def test_invalid_suites_are_input_errors(tmp_path: Path) -> None:
    def undefined_slot(d: dict[str, Any]) -> None:
        d["invariance"]["templates"][0]["template"] = "where is {parcel}"

    message = bad_suite(tmp_path, undefined_slot)
    assert "invariance" in message and "'tpl-track'" in message and "parcel" in message

    message = bad_suite(tmp_path, lambda d: d["out_of_scope"][0].update(id="track-1"))
    assert "track-1" in message and "unique" in message

    message = bad_suite(tmp_path, lambda d: d["invariance"].update(perturbations=["reverse"]))
    assert "invariance.perturbations[0]" in message

    message = bad_suite(tmp_path, lambda d: d.update(suite="ranking"))
    assert "suite:" in message

    broken = tmp_path / "broken.yaml"
    broken.write_text("suite: intent\nseed: [1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"broken\.yaml: not valid YAML at line"):
        load_suite(broken)
    with pytest.raises(InputError, match="not found"):
        load_suite(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match="expected 'intent'"):
        load_intent_suite(REPO / RECOMMENDER_SUITE)


# --------------------------------------------------------------------------------------------
# Intent runner
# --------------------------------------------------------------------------------------------


def test_keyword_model_fails_exactly_the_expected_cases(small_suite: IntentSuite) -> None:
    calls: list[list[str]] = []

    def predict(texts: list[str]) -> list[str]:
        calls.append(list(texts))
        return keyword_predict(texts)

    report = run_intent_suite(small_suite, predict, known_labels=None)
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))
    assert counts(report) == {
        "minimum_functionality": (3, 1, 0),
        "out_of_scope": (2, 1, 0),
        "invariance/templates": (2, 1, 0),
        # "where is my order #1" / "#3" are already lowercase: no case.
        "invariance/lowercase": (6, 2, 0),
        "invariance/uppercase": (8, 0, 0),
    }
    assert report.test("minimum_functionality").failures == [
        {
            "id": "cancel-1",
            "input": "Cancel my order",
            "expected": "cancel_order",
            "got": "track_order",
        }
    ]
    assert report.test("out_of_scope").failed_ids == ["oos-joke"]
    templates = report.test("invariance/templates")
    assert templates.failed_ids == ["tpl-track"]
    assert "'where is my order ORD-2' -> cancel_order" in templates.failures[0]["got"]
    assert "#1" not in templates.failures[0]["got"]
    lower = report.test("invariance/lowercase")
    assert lower.failed_ids == ["cancel-1:lowercase", "tpl-track[1]:lowercase"]
    assert lower.failures[1] == {
        "id": "tpl-track[1]:lowercase",
        "input": "where is my order ord-2",
        "original": "where is my order ORD-2",
        "expected": "cancel_order",
        "got": "track_order",
    }
    assert (report.n_cases, report.n_failed) == (21, 5)
    assert report.pass_rate == pytest.approx(16 / 21)


def test_unknown_labels_are_not_applicable(small_suite: IntentSuite) -> None:
    report = run_intent_suite(
        small_suite, keyword_predict, known_labels={"track_order", "cancel_order"}
    )
    assert counts(report) == {
        "minimum_functionality": (3, 1, 1),
        # out_of_scope is no training label here, yet its cases always apply.
        "out_of_scope": (2, 1, 0),
        "invariance/templates": (2, 1, 1),
        "invariance/lowercase": (6, 2, 3),
        "invariance/uppercase": (8, 0, 3),
    }
    assert report.test("minimum_functionality").not_applicable_ids == ["refund-1"]
    assert report.test("invariance/uppercase").not_applicable_ids == [
        "refund-1:uppercase",
        "tpl-stock[0]:uppercase",
        "tpl-stock[1]:uppercase",
    ]
    assert report.test("minimum_functionality").pass_rate == pytest.approx(0.5)
    assert report.n_not_applicable == 8
    assert report.pass_rate == pytest.approx((21 - 8 - 5) / (21 - 8))


def test_custom_oos_label_and_predict_length_check(small_suite: IntentSuite) -> None:
    report = run_intent_suite(
        small_suite,
        lambda texts: ["unknown" if t.startswith("What") else "x" for t in texts],
        known_labels=set(),
        oos_label="unknown",
    )
    assert report.test("out_of_scope").failed_ids == ["oos-joke"]
    with pytest.raises(ValueError, match="labels for"):
        run_intent_suite(small_suite, lambda texts: ["x"], known_labels=None)


def test_expand_template_is_the_cartesian_product() -> None:
    fills = expand_template(
        "send {order} to {city}, {order}", {"order": ["#1", "#2"], "city": "AB"}
    )
    assert fills == ["send #1 to A, #1", "send #1 to B, #1", "send #2 to A, #2", "send #2 to B, #2"]


SAMPLES = [
    "Where is my order?",
    "I'd like to return the Helen Brightening moisturizer 3",
    "Please send order ORD-58213 to my new address in Lisbon.",
    "Tell me a joke, please",
    "Does the Corora High-speed memory card come with a warranty?",
]


@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_perturbations_change_the_text_deterministically(kind: str) -> None:
    first = [perturb(t, kind, seed=3) for t in SAMPLES]
    assert first == [perturb(t, kind, seed=3) for t in SAMPLES]
    assert all(p != t for p, t in zip(first, SAMPLES, strict=True))


def test_perturbations_do_what_they_say() -> None:
    text = "Please send order ORD-58213 to my new address in Lisbon, thanks!"
    assert perturb(text, "lowercase", 0) == text.lower()
    assert perturb(text, "uppercase", 0) == text.upper()
    assert perturb(text, "strip_punctuation", 0) == (
        "Please send order ORD-58213 to my new address in Lisbon thanks"
    )
    assert perturb("What's up?", "strip_punctuation", 0) == "Whats up"
    marked = perturb(text, "add_punctuation", 0)
    assert marked[:-1] == text and marked[-1] in "?!"
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturb(text, "shuffle", 0)


def test_typo_is_one_letter_swap_or_drop_and_follows_the_seed() -> None:
    for seed in range(20):
        for text in SAMPLES:
            typo = perturb(text, "typo", seed)
            before, after = text.split(" "), typo.split(" ")
            changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
            assert len(changed) == 1, (text, typo)
            a, b = changed[0]
            assert a[0] == b[0] and a[-1] == b[-1]
            assert len(b) == len(a) - 1 or sorted(a) == sorted(b)
    by_seed = {tuple(perturb(t, "typo", seed) for t in SAMPLES) for seed in range(5)}
    assert len(by_seed) > 1


def test_suite_seed_decides_the_typo_cases(tmp_path: Path) -> None:
    def typo_inputs(seed: int) -> list[str]:
        data = copy.deepcopy(SMALL_INTENT)
        data["seed"] = seed
        data["invariance"]["perturbations"] = ["typo"]
        suite = load_intent_suite(write_yaml(tmp_path, data, f"s{seed}.yaml"))
        seen: list[str] = []

        def predict(texts: list[str]) -> list[str]:
            seen.extend(texts)
            return ["track_order"] * len(texts)

        run_intent_suite(suite, predict, known_labels=None)
        return seen

    assert typo_inputs(1) == typo_inputs(1)
    assert typo_inputs(1) != typo_inputs(2)


# --------------------------------------------------------------------------------------------
# Comparison and markdown
# --------------------------------------------------------------------------------------------


def report_with(failed: list[str], na: list[str] = (), n: int = 10) -> BehaviourReport:  # type: ignore[assignment]
    failures = [{"id": i, "input": f"text {i}", "expected": "a", "got": "b"} for i in failed]
    test = TestResult("minimum_functionality", "mft", n, list(failed), list(na), failures)
    other = TestResult("out_of_scope", "mft", 2, [], [], [])
    return BehaviourReport("intent", [test, other])


def test_compare_counts_extra_failures_against_the_tolerance() -> None:
    champion = report_with(["c1"])
    challenger = report_with(["c1", "c2", "c3"])
    ok, reasons = compare_behaviour(challenger, champion, max_extra_failures=2)
    assert ok
    assert reasons[0].startswith("PASS")
    ok, reasons = compare_behaviour(challenger, champion, max_extra_failures=1)
    assert not ok
    assert reasons[0].startswith("FAIL") and "3 of 12" in reasons[0] and "champion 1" in reasons[0]
    assert len(reasons) == 2
    assert reasons[1].startswith("behaviour minimum_functionality: the challenger fails 2 case(s)")
    assert "c2 ('text c2': expected a, got b)" in reasons[1] and "c3" in reasons[1]
    assert "c1" not in reasons[1]


def test_compare_fewer_or_equal_failures_pass_with_no_tolerance() -> None:
    assert compare_behaviour(report_with(["c1"]), report_with(["c1", "c2"]), 0)[0]
    # Same count, different cases: no extra failure, but the new one is named.
    ok, reasons = compare_behaviour(report_with(["c2"]), report_with(["c1"]), 0)
    assert ok and "c2" in reasons[1] and "1 newly failing, 1 fixed" in reasons[0]


def test_compare_ignores_cases_not_applicable_to_either_side() -> None:
    champion = report_with([], na=["c2", "c3"])
    challenger = report_with(["c2", "c3", "c4"])
    ok, reasons = compare_behaviour(challenger, champion, 0)
    assert not ok
    assert "fails 1 of 10 cases applicable to both" in reasons[0]
    assert compare_behaviour(challenger, champion, 1)[0]


def test_compare_first_run_and_mismatched_reports() -> None:
    ok, reasons = compare_behaviour(report_with(["c1", "c2"], na=["c3"]), None, 0)
    assert ok and len(reasons) == 1
    assert "no champion" in reasons[0] and "81.8%" in reasons[0] and "(9/11; 1 not" in reasons[0]
    with pytest.raises(ValueError, match="same suite"):
        compare_behaviour(report_with([], n=10), report_with([], n=11), 0)
    with pytest.raises(ValueError, match=">= 0"):
        compare_behaviour(report_with([]), report_with([]), -1)


def test_to_dict_caps_failures_but_keeps_counts_and_comparison() -> None:
    ids = [f"c{i}" for i in range(25)]
    report = report_with(ids, na=["c30"], n=40)
    data = report.to_dict()
    test = data["tests"][0]
    assert (test["n_cases"], test["n_failed"], test["n_not_applicable"]) == (40, 25, 1)
    assert len(test["failures"]) == 20 and len(test["failed_ids"]) == 25
    assert data["n_failed"] == 25 and data["pass_rate"] == pytest.approx(16 / 41)
    back = BehaviourReport.from_dict(yaml.safe_load(yaml.safe_dump(data)))
    champion = report_with([], n=40)
    assert compare_behaviour(back, champion, 24) == compare_behaviour(report, champion, 24)
    assert not compare_behaviour(back, champion, 24)[0]


def test_markdown_shows_both_sides_and_the_failing_cases(small_suite: IntentSuite) -> None:
    challenger = run_intent_suite(small_suite, keyword_predict, known_labels=None)
    champion = run_intent_suite(
        small_suite,
        lambda t: ["cancel_order" if "ancel" in x else "track_order" for x in t],
        known_labels=None,
    )
    text = format_markdown(challenger, champion)
    assert "| minimum_functionality | mft | 66.7% (2/3) | 66.7% (2/3) |" in text
    assert "| out_of_scope | mft | 50.0% (1/2) | 0.0% (0/2) |" in text
    row = next(line for line in text.splitlines() if "| cancel-1 |" in line)
    assert "Cancel my order" in row and row.endswith("| passes |")
    assert "oos-weather" in text.split("champion fails and the challenger passes")[1]
    first_run = format_markdown(challenger, None)
    assert "| invariance/uppercase | inv | 100.0% (8/8) | – |" in first_run
    piped = report_with(["c1"])
    piped.tests[0].failures[0]["input"] = "a | b"
    assert "a \\| b" in format_markdown(piped, None)


# --------------------------------------------------------------------------------------------
# Recommender
# --------------------------------------------------------------------------------------------

REC_SUITE: dict[str, Any] = {
    "suite": "recommender",
    "seed": 5,
    "history_excluded": {"users": 30, "k": 10},
    "new_item_by_text": {"users": 20, "max_rank_percentile": 0.05},
    "deterministic": {"users": 20, "k": 10, "score_tolerance": 0.0},
}
N_ITEMS, TEXT_DIM = 60, 24


@pytest.fixture
def rec_suite(tmp_path: Path) -> RecommenderSuite:
    return load_recommender_suite(write_yaml(tmp_path, REC_SUITE))


@pytest.fixture(scope="module")
def shop() -> tuple[list[list[str]], dict[str, str], dict[str, np.ndarray]]:
    """40 histories within one category each, item texts, and the "encoder" (text -> vector):
    unit vectors carrying the item's category, like a real text encoder's."""
    rng = np.random.default_rng(0)
    cats = np.arange(N_ITEMS) % 6
    v = rng.normal(size=(N_ITEMS, TEXT_DIM)) + 4.0 * np.eye(TEXT_DIM)[cats]
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"I{i:03d}" for i in range(N_ITEMS)]
    texts = {ids[i]: f"item {i} of category {cats[i]}" for i in range(N_ITEMS)}
    encoder = {texts[ids[i]]: v[i] for i in range(N_ITEMS)}
    histories = []
    for _ in range(40):
        members = np.flatnonzero(cats == rng.integers(6))
        size = int(rng.integers(3, 7))
        histories.append([ids[i] for i in rng.choice(members, size, replace=False)])
    return histories, texts, encoder


def make_pyfunc(encoder: dict[str, np.ndarray], negate: bool = False) -> Any:
    """The registered pyfunc around a tiny (untrained) real Recommender; texts are encoded by
    lookup (``negate``: a broken encoder giving the opposite vector)."""
    import torch

    from ml.models.recommender.model import Recommender, SeqRecNet
    from ml.models.recommender.pyfunc import RecommenderPyfunc

    class LookupPyfunc(RecommenderPyfunc):
        def __init__(self, model: Recommender) -> None:
            self.model = model

        def add_items(self, item_ids: Sequence[str], texts: Sequence[str]) -> None:
            vectors = np.stack([encoder[t] for t in texts])
            self.model.add_items(list(item_ids), -vectors if negate else vectors)

    torch.manual_seed(0)
    vectors = np.stack(list(encoder.values()))
    net = SeqRecNet(torch.from_numpy(vectors), torch.ones(N_ITEMS), dim=16, n_clusters=2)
    ids = [f"I{i:03d}" for i in range(N_ITEMS)]
    model = Recommender(net, ids, vectors, vectors[:2].copy(), max_history=10, config={})
    return LookupPyfunc(model)


class FakeRecommender:
    """Ranks the catalogue in a fixed order. ``leak``: puts the user's history first;
    ``noisy``: shuffles and jitters on every call."""

    def __init__(self, items: list[str], *, leak: bool = False, noisy: bool = False) -> None:
        self.items = list(items)
        self.leak, self.noisy = leak, noisy
        self.rng = np.random.default_rng(0)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        k = int(params["k"])
        rows, scores = [], []
        for history in model_input["history"]:
            ranked = [i for i in self.items if self.leak or i not in history]
            if self.leak:
                ranked = list(history) + [i for i in ranked if i not in history]
            if self.noisy:
                ranked = list(self.rng.permutation(ranked))
            rows.append(ranked[:k])
            jitter = self.rng.normal(0, 1e-3, k) if self.noisy else 0.0
            scores.append((np.linspace(1, 0, k) + jitter).tolist())
        return pd.DataFrame({"items": rows, "scores": scores})

    def add_items(self, item_ids: Sequence[str], texts: Sequence[str]) -> None:
        self.items += list(item_ids)


def test_tiny_real_recommender_passes_and_is_left_unchanged(rec_suite, shop) -> None:  # type: ignore[no-untyped-def]
    histories, texts, encoder = shop
    pyfunc = make_pyfunc(encoder)
    inputs = pd.DataFrame({"history": histories})
    before = pyfunc.predict(None, inputs, {"k": N_ITEMS})
    report = run_recommender_suite(rec_suite, pyfunc, histories, texts)
    assert counts(report) == {
        "history_excluded": (30, 0, 0),
        "new_item_by_text": (20, 0, 0),
        "deterministic": (20, 0, 0),
    }
    assert report.pass_rate == 1.0
    assert pyfunc.model.n_items == N_ITEMS and pyfunc.model.net.n_items == N_ITEMS
    assert pyfunc.model.item_ids == [f"I{i:03d}" for i in range(N_ITEMS)]
    after = pyfunc.predict(None, inputs, {"k": N_ITEMS})
    pd.testing.assert_frame_equal(before, after)
    # Sampling follows the seed: same users again.
    again = run_recommender_suite(rec_suite, pyfunc, histories, texts)
    assert again.to_dict() == report.to_dict()


def test_new_item_check_fails_when_text_does_not_rank_it(rec_suite, shop) -> None:  # type: ignore[no-untyped-def]
    histories, texts, encoder = shop
    report = run_recommender_suite(rec_suite, make_pyfunc(encoder, negate=True), histories, texts)
    new_item = report.test("new_item_by_text")
    assert (new_item.n_cases, new_item.n_failed) == (20, 20)
    assert new_item.failures[0]["expected"] == "rank <= 3 (best 5.0% of 60 items)"
    assert re.fullmatch(r"rank (> )?\d+", new_item.failures[0]["got"])
    assert report.test("history_excluded").n_failed == 0


def test_broken_fakes_fail_history_and_determinism(rec_suite, shop) -> None:  # type: ignore[no-untyped-def]
    histories, texts, _ = shop
    catalogue = list(texts)
    good = run_recommender_suite(rec_suite, FakeRecommender(catalogue), histories, texts)
    assert good.test("history_excluded").n_failed == 0
    assert good.test("deterministic").n_failed == 0
    # The fake appends new items last: text is ignored, so the directional check fails.
    assert good.test("new_item_by_text").n_failed == 20

    leaky = run_recommender_suite(
        rec_suite, FakeRecommender(catalogue, leak=True), histories, texts
    )
    leaked = leaky.test("history_excluded")
    assert (leaked.n_cases, leaked.n_failed) == (30, 30)
    assert leaked.failures[0]["got"].startswith("history items recommended: ")

    noisy = run_recommender_suite(
        rec_suite, FakeRecommender(catalogue, noisy=True), histories, texts
    )
    assert noisy.test("deterministic").n_failed == 20
    assert noisy.test("deterministic").failures[0]["got"].startswith("item lists differ")


def test_score_tolerance_and_small_samples(tmp_path: Path, shop) -> None:  # type: ignore[no-untyped-def]
    histories, texts, _ = shop

    class Jitter(FakeRecommender):
        def predict(
            self, context: Any, model_input: pd.DataFrame, params: Any = None
        ) -> pd.DataFrame:
            frame = super().predict(context, model_input, params)
            frame["scores"] = [
                (np.asarray(s) + self.rng.normal(0, 1e-9, len(s))).tolist() for s in frame["scores"]
            ]
            return frame

    data = copy.deepcopy(REC_SUITE)
    strict = load_recommender_suite(write_yaml(tmp_path, data, "strict.yaml"))
    data["deterministic"]["score_tolerance"] = 1e-6
    data["history_excluded"]["users"] = 1000  # more than there are: every user once
    loose = load_recommender_suite(write_yaml(tmp_path, data, "loose.yaml"))
    model = Jitter(list(texts))
    assert (
        run_recommender_suite(strict, model, histories, texts).test("deterministic").n_failed == 20
    )
    loose_report = run_recommender_suite(loose, model, histories, texts)
    assert loose_report.test("deterministic").n_failed == 0
    assert loose_report.test("history_excluded").n_cases == len(histories)
