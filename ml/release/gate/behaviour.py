"""CheckList-style behavioural checks the offline release gate runs on champion and challenger.

The suites are reviewed data (``expectations/behaviour/*.yaml``; the format is described in
each file's header). This module loads them, runs them against a model and compares two runs:

* intent: ``run_intent_suite(suite, predict, known_labels=..., oos_label=...)`` where
  ``predict`` maps a list of texts to a list of predicted labels (called once per run, on every
  distinct text of the suite). Tests: ``minimum_functionality`` (mft: phrase -> expected
  label), ``out_of_scope`` (mft: phrase -> ``oos_label``), ``invariance/templates`` (inv: every
  fill of a slotted template gets one label) and one ``invariance/<perturbation>`` test per
  perturbation (inv: a perturbed text gets the label its original got).
* recommender: ``run_recommender_suite(suite, model, histories, item_text)``. Tests:
  ``history_excluded`` (mft), ``new_item_by_text`` (dir), ``deterministic`` (inv).

A case tied to an intent the model was not trained on (``known_labels``) is *not applicable*:
counted apart, neither passed nor failed. ``compare_behaviour`` judges the challenger against
the champion on the cases applicable to both; ``format_markdown`` renders both runs for the
gate's report. Pure Python: no MLflow, no torch.
"""

from __future__ import annotations

import copy
import itertools
import math
import string
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ml.core.config import StrictModel
from ml.core.errors import InputError
from ml.core.schemas import OUT_OF_SCOPE, RECOMMENDER_PYFUNC_INPUT, RECOMMENDER_PYFUNC_OUTPUT

INTENT_SUITE = Path("expectations/behaviour/intent.yaml")
RECOMMENDER_SUITE = Path("expectations/behaviour/recommender.yaml")

# Failure details kept per test in to_dict() / shown per test in reports (counts stay exact).
MAX_FAILURES_SHOWN = 20
# Most fills one template may expand to (cartesian product of its slots' values).
MAX_TEMPLATE_FILLS = 200

Perturbation = Literal["typo", "lowercase", "uppercase", "strip_punctuation", "add_punctuation"]
PERTURBATIONS: tuple[str, ...] = (
    "typo",
    "lowercase",
    "uppercase",
    "strip_punctuation",
    "add_punctuation",
)
# Sentence punctuation removed by strip_punctuation; '#' and '-' stay (they are part of ids
# such as "#4821937" and "ORD-58213").
_STRIP_TABLE = str.maketrans("", "", ".,!?;:'\"")
_FORMATTER = string.Formatter()
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

# --------------------------------------------------------------------------------------------
# Suites (the yaml files' schema)
# --------------------------------------------------------------------------------------------


class LabelledCase(StrictModel):
    """A minimum-functionality case: this text must be predicted as ``label``."""

    id: str = Field(pattern=_ID_PATTERN)
    text: str = Field(min_length=1)
    label: str = Field(min_length=1)


class OutOfScopeCase(StrictModel):
    """A text the model must predict as out of scope."""

    id: str = Field(pattern=_ID_PATTERN)
    text: str = Field(min_length=1)


class TemplateCase(StrictModel):
    """A template with ``{slot}`` fields; every fill must get one label. ``label`` is the intent
    it was written for: only used to decide applicability (and documents the case)."""

    id: str = Field(pattern=_ID_PATTERN)
    template: str = Field(min_length=1)
    label: str = Field(min_length=1)

    @field_validator("template")
    @classmethod
    def _has_slots(cls, value: str) -> str:
        try:
            names = template_slots(value)
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from exc
        if not names:
            raise ValueError("a template needs at least one {slot}")
        return value


class InvarianceSpec(StrictModel):
    slots: dict[str, list[str]] = Field(min_length=1)
    templates: list[TemplateCase] = Field(min_length=1)
    perturbations: list[Perturbation] = Field(min_length=1)

    @field_validator("slots")
    @classmethod
    def _slot_values(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in value.items():
            if len(values) < 2:
                raise ValueError(f"slot {name!r} needs at least 2 values to swap")
            if len(set(values)) != len(values) or not all(v.strip() for v in values):
                raise ValueError(f"slot {name!r} has repeated or empty values")
        return value

    @field_validator("perturbations")
    @classmethod
    def _unique_perturbations(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("perturbations are listed more than once")
        return value

    @model_validator(mode="after")
    def _templates_use_known_slots(self) -> InvarianceSpec:
        for t in self.templates:
            names = template_slots(t.template)
            missing = [n for n in names if n not in self.slots]
            if missing:
                raise ValueError(
                    f"template {t.id!r} uses slot(s) {missing} not defined under invariance.slots"
                )
            n_fills = math.prod(len(self.slots[n]) for n in dict.fromkeys(names))
            if n_fills > MAX_TEMPLATE_FILLS:
                raise ValueError(
                    f"template {t.id!r} expands to {n_fills} fills (> {MAX_TEMPLATE_FILLS})"
                )
        return self


class IntentSuite(StrictModel):
    suite: Literal["intent"]
    # Seeds the typo and add_punctuation perturbations (same seed, same texts).
    seed: int = Field(ge=0)
    minimum_functionality: list[LabelledCase] = Field(min_length=1)
    out_of_scope: list[OutOfScopeCase]
    invariance: InvarianceSpec

    @model_validator(mode="after")
    def _unique_ids(self) -> IntentSuite:
        ids = [c.id for c in self.minimum_functionality]
        ids += [c.id for c in self.out_of_scope]
        ids += [t.id for t in self.invariance.templates]
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            raise ValueError(f"case ids must be unique across the suite; repeated: {repeated}")
        return self


class HistoryExcludedSpec(StrictModel):
    users: int = Field(ge=1)
    k: int = Field(ge=1)


class NewItemSpec(StrictModel):
    users: int = Field(ge=1)
    # The new item's rank must be <= ceil(max_rank_percentile * catalogue size).
    max_rank_percentile: float = Field(gt=0.0, le=1.0)


class DeterministicSpec(StrictModel):
    users: int = Field(ge=1)
    k: int = Field(ge=1)
    # Largest absolute score difference tolerated between the two calls (0 = bit-identical).
    score_tolerance: float = Field(ge=0.0)


class RecommenderSuite(StrictModel):
    suite: Literal["recommender"]
    # Seeds the choice of sampled users.
    seed: int = Field(ge=0)
    history_excluded: HistoryExcludedSpec
    new_item_by_text: NewItemSpec
    deterministic: DeterministicSpec


Suite = IntentSuite | RecommenderSuite
_SUITES: dict[str, type[IntentSuite] | type[RecommenderSuite]] = {
    "intent": IntentSuite,
    "recommender": RecommenderSuite,
}


def _error_location(raw: Any, loc: Sequence[Any]) -> str:
    """``minimum_functionality[3].label``; list entries with an ``id`` name it."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                out += f"(id {node['id']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def load_suite(path: str | Path) -> Suite:
    """Read and validate a behaviour suite; its ``suite:`` key says which kind.

    Every problem is an :class:`InputError` of one line naming the file and the field.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: behaviour suite not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read behaviour suite: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(f"{path}: not valid YAML{where}: {problem}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{path}: (top level): expected a mapping with a 'suite' key")
    kind = raw.get("suite")
    if kind not in _SUITES:
        raise InputError(f"{path}: suite: expected one of {sorted(_SUITES)}, got {kind!r}")
    try:
        return _SUITES[kind].model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        message = " ".join(str(first["msg"]).split())
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        location = _error_location(raw, first["loc"])
        raise InputError(f"{path}: {location}: {message}{more}") from exc


def load_intent_suite(path: str | Path = INTENT_SUITE) -> IntentSuite:
    suite = load_suite(path)
    if not isinstance(suite, IntentSuite):
        raise InputError(f"{path}: suite: expected 'intent', got {suite.suite!r}")
    return suite


def load_recommender_suite(path: str | Path = RECOMMENDER_SUITE) -> RecommenderSuite:
    suite = load_suite(path)
    if not isinstance(suite, RecommenderSuite):
        raise InputError(f"{path}: suite: expected 'recommender', got {suite.suite!r}")
    return suite


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass
class TestResult:
    """One test of a suite. ``n_cases`` counts every case, not-applicable ones included."""

    __test__ = False  # not a pytest test class

    name: str
    kind: str  # mft | inv | dir
    n_cases: int
    failed_ids: list[str] = field(default_factory=list)
    not_applicable_ids: list[str] = field(default_factory=list)
    # {"id", "input", "expected", "got", ...} per failed case, in case order. Complete when
    # the result comes from a run; only the first MAX_FAILURES_SHOWN after from_dict().
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return len(self.failed_ids)

    @property
    def n_not_applicable(self) -> int:
        return len(self.not_applicable_ids)

    @property
    def n_applicable(self) -> int:
        return self.n_cases - self.n_not_applicable

    @property
    def pass_rate(self) -> float | None:
        """Passed / applicable cases; None when no case applies."""
        n = self.n_applicable
        return (n - self.n_failed) / n if n else None

    def failure(self, case_id: str) -> dict[str, str]:
        """The failure details of ``case_id`` (just the id when they were not kept)."""
        for f in self.failures:
            if f.get("id") == case_id:
                return f
        return {"id": case_id}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "n_cases": self.n_cases,
            "n_failed": self.n_failed,
            "n_not_applicable": self.n_not_applicable,
            "pass_rate": self.pass_rate,
            "failed_ids": list(self.failed_ids),
            "not_applicable_ids": list(self.not_applicable_ids),
            "failures": [dict(f) for f in self.failures[:MAX_FAILURES_SHOWN]],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestResult:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            n_cases=int(data["n_cases"]),
            failed_ids=[str(i) for i in data.get("failed_ids", [])],
            not_applicable_ids=[str(i) for i in data.get("not_applicable_ids", [])],
            failures=[{str(k): str(v) for k, v in f.items()} for f in data.get("failures", [])],
        )


@dataclass
class BehaviourReport:
    suite: str  # intent | recommender
    tests: list[TestResult]

    @property
    def n_cases(self) -> int:
        return sum(t.n_cases for t in self.tests)

    @property
    def n_failed(self) -> int:
        return sum(t.n_failed for t in self.tests)

    @property
    def n_not_applicable(self) -> int:
        return sum(t.n_not_applicable for t in self.tests)

    @property
    def n_applicable(self) -> int:
        return self.n_cases - self.n_not_applicable

    @property
    def pass_rate(self) -> float | None:
        n = self.n_applicable
        return (n - self.n_failed) / n if n else None

    def test(self, name: str) -> TestResult:
        for t in self.tests:
            if t.name == name:
                return t
        raise KeyError(f"no test {name!r} in the {self.suite} behaviour report")

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "n_cases": self.n_cases,
            "n_failed": self.n_failed,
            "n_not_applicable": self.n_not_applicable,
            "pass_rate": self.pass_rate,
            "tests": [t.to_dict() for t in self.tests],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BehaviourReport:
        return cls(str(data["suite"]), [TestResult.from_dict(t) for t in data["tests"]])


class _Collector:
    """Accumulates the outcome of each case of one test."""

    def __init__(self, name: str, kind: str) -> None:
        self.result = TestResult(name, kind, 0)

    def not_applicable(self, case_id: str) -> None:
        self.result.n_cases += 1
        self.result.not_applicable_ids.append(case_id)

    def check(self, case_id: str, ok: bool, **details: str) -> None:
        self.result.n_cases += 1
        if not ok:
            self.result.failed_ids.append(case_id)
            self.result.failures.append({"id": case_id, **details})


# --------------------------------------------------------------------------------------------
# Intent
# --------------------------------------------------------------------------------------------


def template_slots(template: str) -> list[str]:
    """Slot names of a template in order of first use, e.g. ``["product", "order_id"]``."""
    names = [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]
    if any(not n.isidentifier() for n in names):
        raise ValueError(f"slot names must be plain names, got {names}")
    return list(dict.fromkeys(names))


def expand_template(template: str, slots: Mapping[str, Sequence[str]]) -> list[str]:
    """Every fill of ``template``: the cartesian product of its slots' values, in file order."""
    names = template_slots(template)
    return [
        template.format(**dict(zip(names, values, strict=True)))
        for values in itertools.product(*(slots[n] for n in names))
    ]


def _typo(rng: np.random.Generator, text: str) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        candidates = [i for i, w in enumerate(words) if len(w) >= 3]
    if not candidates:
        return text
    w = int(candidates[int(rng.integers(len(candidates)))])
    word = words[w]
    # Interior letters only (first and last stay, as in real typos); swap or drop one.
    swaps = [k for k in range(1, len(word) - 2) if word[k] != word[k + 1]]
    if swaps and rng.random() < 0.5:
        k = swaps[int(rng.integers(len(swaps)))]
        word = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
    else:
        k = int(rng.integers(1, len(word) - 1))
        word = word[:k] + word[k + 1 :]
    words[w] = word
    return " ".join(words)


def perturb(text: str, kind: str, seed: int) -> str:
    """``text`` perturbed by ``kind`` (one of PERTURBATIONS); deterministic given ``seed``.

    The random perturbations draw from a generator seeded by (seed, kind, text), so a text's
    perturbation does not depend on which other texts the suite holds. May return ``text``
    unchanged (lowercasing a lowercase text): such cases are left out of the test.
    """
    if kind == "lowercase":
        return text.lower()
    if kind == "uppercase":
        return text.upper()
    if kind == "strip_punctuation":
        return " ".join(text.translate(_STRIP_TABLE).split())
    rng = np.random.default_rng(
        [seed, zlib.crc32(kind.encode("utf-8")), zlib.crc32(text.encode("utf-8"))]
    )
    if kind == "typo":
        return _typo(rng, text)
    if kind == "add_punctuation":
        return text.rstrip() + ("?" if rng.random() < 0.5 else "!")
    raise ValueError(f"unknown perturbation {kind!r}; expected one of {PERTURBATIONS}")


@dataclass(frozen=True)
class _Source:
    """A text perturbations start from: a minimum-functionality phrase or a template fill."""

    id: str
    text: str
    label: str


def _template_fills(suite: IntentSuite) -> list[tuple[TemplateCase, list[_Source]]]:
    out = []
    for t in suite.invariance.templates:
        fills = expand_template(t.template, suite.invariance.slots)
        out.append((t, [_Source(f"{t.id}[{j}]", text, t.label) for j, text in enumerate(fills)]))
    return out


def _predict_all(predict: Callable[[list[str]], Sequence[str]], texts: list[str]) -> dict[str, str]:
    if not texts:
        return {}
    predictions = list(predict(texts))
    if len(predictions) != len(texts):
        raise ValueError(f"predict returned {len(predictions)} labels for {len(texts)} texts")
    return {t: str(p) for t, p in zip(texts, predictions, strict=True)}


def _check_template_invariance(
    templates: list[tuple[TemplateCase, list[_Source]]],
    pred: Mapping[str, str],
    applicable: Callable[[str], bool],
) -> TestResult:
    """Every fill of a template should get one label; the odd ones out are the failures."""
    inv = _Collector("invariance/templates", "inv")
    for t, fills in templates:
        if not applicable(t.label):
            inv.not_applicable(t.id)
            continue
        labels = [pred[s.text] for s in fills]
        majority = Counter(labels).most_common(1)[0][0]
        odd = [
            f"{s.text!r} -> {label}"
            for s, label in zip(fills, labels, strict=True)
            if label != majority
        ]
        inv.check(
            t.id,
            not odd,
            input=t.template,
            expected=f"one label for all {len(fills)} fills (most got {majority})",
            got="; ".join(odd),
        )
    return inv.result


def _check_perturbation_invariance(
    kind: str,
    pairs: list[tuple[_Source, str]],
    pred: Mapping[str, str],
    applicable: Callable[[str], bool],
) -> TestResult:
    """A ``kind`` perturbation of a text should not change its predicted label."""
    col = _Collector(f"invariance/{kind}", "inv")
    for s, text in pairs:
        if text == s.text:
            continue  # the perturbation does not apply to this text
        case_id = f"{s.id}:{kind}"
        if not applicable(s.label):
            col.not_applicable(case_id)
            continue
        before, after = pred[s.text], pred[text]
        col.check(case_id, after == before, input=text, original=s.text, expected=before, got=after)
    return col.result


def run_intent_suite(
    suite: IntentSuite,
    predict: Callable[[list[str]], Sequence[str]],
    *,
    known_labels: Iterable[str] | None,
    oos_label: str = OUT_OF_SCOPE,
) -> BehaviourReport:
    """Run every intent test; ``predict`` is called once, on every distinct text of the suite.

    ``known_labels``: the model's label set; a case whose (intended) label is not in it is not
    applicable. None: every case applies. Out-of-scope cases always apply (a model predicts
    ``oos_label`` through its confidence threshold even when it never trained on it).
    """
    known = None if known_labels is None else set(known_labels)

    def applicable(label: str) -> bool:
        return known is None or label == oos_label or label in known

    templates = _template_fills(suite)
    sources = [_Source(c.id, c.text, c.label) for c in suite.minimum_functionality]
    sources += [s for _, fills in templates for s in fills]
    perturbed = {
        kind: [(s, perturb(s.text, kind, suite.seed)) for s in sources]
        for kind in suite.invariance.perturbations
    }
    texts = [c.text for c in suite.minimum_functionality]
    texts += [c.text for c in suite.out_of_scope]
    texts += [s.text for s in sources]
    texts += [p for pairs in perturbed.values() for _, p in pairs]
    pred = _predict_all(predict, list(dict.fromkeys(texts)))

    mft = _Collector("minimum_functionality", "mft")
    for c in suite.minimum_functionality:
        if not applicable(c.label):
            mft.not_applicable(c.id)
            continue
        got = pred[c.text]
        mft.check(c.id, got == c.label, input=c.text, expected=c.label, got=got)

    oos = _Collector("out_of_scope", "mft")
    for o in suite.out_of_scope:
        got = pred[o.text]
        oos.check(o.id, got == oos_label, input=o.text, expected=oos_label, got=got)

    tests = [mft.result, oos.result, _check_template_invariance(templates, pred, applicable)]
    tests += [
        _check_perturbation_invariance(kind, pairs, pred, applicable)
        for kind, pairs in perturbed.items()
    ]
    return BehaviourReport("intent", tests)


# --------------------------------------------------------------------------------------------
# Recommender
# --------------------------------------------------------------------------------------------


class RecommenderLike(Protocol):
    """What the recommender checks use: the registered pyfunc's interface
    (:class:`ml.models.recommender.pyfunc.RecommenderPyfunc`, from ``unwrap_python_model()``).

    ``predict(None, DataFrame({"history": [[item_id, ...], ...]}), params={"k": k})`` returns a
    DataFrame with ``items`` (list of item_id, best first, history items excluded by contract)
    and ``scores``; ``add_items(item_ids, texts)`` makes new items rankable from their text.
    The object must survive ``copy.deepcopy`` (new_item_by_text works on a copy).
    """

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any: ...

    def add_items(self, item_ids: Sequence[str], texts: Sequence[str]) -> None: ...


def _recommend(
    model: RecommenderLike, histories: Sequence[Sequence[str]], k: int
) -> tuple[list[list[str]], list[np.ndarray]]:
    frame = model.predict(
        None, pd.DataFrame({RECOMMENDER_PYFUNC_INPUT[0]: [list(h) for h in histories]}), {"k": k}
    )
    items_col, scores_col = RECOMMENDER_PYFUNC_OUTPUT
    if not isinstance(frame, pd.DataFrame) or not {items_col, scores_col} <= set(frame.columns):
        raise ValueError(
            f"recommender predict must return a DataFrame with {items_col!r}, {scores_col!r}"
        )
    if len(frame) != len(histories):
        raise ValueError(f"recommender returned {len(frame)} rows for {len(histories)} histories")
    items = [[str(i) for i in row] for row in frame[items_col]]
    scores = [np.asarray(row, dtype=np.float64) for row in frame[scores_col]]
    return items, scores


def _sample_users(seed: int, check: str, eligible: list[int], n: int) -> list[int]:
    """Up to ``n`` of the eligible user positions, drawn without replacement, in order."""
    if len(eligible) <= n:
        return list(eligible)
    rng = np.random.default_rng([seed, zlib.crc32(check.encode("utf-8"))])
    chosen = rng.choice(len(eligible), size=n, replace=False)
    return [eligible[int(i)] for i in sorted(chosen)]


def _show_history(history: Sequence[str], last: int = 5) -> str:
    shown = ", ".join(history[-last:])
    return f"history (last {min(last, len(history))} of {len(history)}): {shown}"


def _check_history_excluded(
    suite: RecommenderSuite, model: RecommenderLike, histories: Sequence[Sequence[str]]
) -> TestResult:
    spec = suite.history_excluded
    col = _Collector("history_excluded", "mft")
    users = _sample_users(
        suite.seed, col.result.name, [u for u, h in enumerate(histories) if h], spec.users
    )
    if not users:
        return col.result
    top, _ = _recommend(model, [histories[u] for u in users], spec.k)
    for u, items in zip(users, top, strict=True):
        seen = set(histories[u])
        leaked = [i for i in items if i in seen]
        col.check(
            f"user{u}",
            not leaked,
            input=_show_history(histories[u]),
            expected=f"no history item in the top {spec.k}",
            got=f"history items recommended: {', '.join(leaked)}",
        )
    return col.result


def _new_item_ids(n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    j = 0
    while len(out) < n:
        candidate = f"behaviour-new-{j:05d}"
        if candidate not in taken:
            out.append(candidate)
        j += 1
    return out


def _check_new_item(
    suite: RecommenderSuite,
    model: RecommenderLike,
    histories: Sequence[Sequence[str]],
    item_text: Mapping[str, str],
) -> TestResult:
    spec = suite.new_item_by_text
    col = _Collector("new_item_by_text", "dir")
    eligible = [u for u, h in enumerate(histories) if h and h[-1] in item_text]
    users = _sample_users(suite.seed, col.result.name, eligible, spec.users)
    if not users:
        return col.result
    n_catalogue = len(item_text)
    limit = max(1, math.ceil(spec.max_rank_percentile * n_catalogue))
    taken = set(item_text) | {i for h in histories for i in h}
    new_ids = _new_item_ids(len(users), taken)
    # One copy, every new item added at once; each user's rank ignores the others' new items.
    work = copy.deepcopy(model)
    work.add_items(new_ids, [item_text[histories[u][-1]] for u in users])
    k = min(n_catalogue + len(users), 4 * limit + len(users))
    top, _ = _recommend(work, [histories[u] for u in users], k)
    others = set(new_ids)
    for u, new_id, items in zip(users, new_ids, top, strict=True):
        ranked = [i for i in items if i == new_id or i not in others]
        rank = ranked.index(new_id) + 1 if new_id in ranked else None
        col.check(
            f"user{u}",
            rank is not None and rank <= limit,
            input=f"new item with the text of {histories[u][-1]}; {_show_history(histories[u])}",
            expected=(
                f"rank <= {limit} (best {spec.max_rank_percentile:.1%} of {n_catalogue} items)"
            ),
            got=f"rank {rank}" if rank is not None else f"rank > {len(ranked)}",
        )
    return col.result


def _check_deterministic(
    suite: RecommenderSuite, model: RecommenderLike, histories: Sequence[Sequence[str]]
) -> TestResult:
    spec = suite.deterministic
    col = _Collector("deterministic", "inv")
    users = _sample_users(suite.seed, col.result.name, list(range(len(histories))), spec.users)
    if not users:
        return col.result
    batch = [histories[u] for u in users]
    items_a, scores_a = _recommend(model, batch, spec.k)
    items_b, scores_b = _recommend(model, batch, spec.k)
    for j, u in enumerate(users):
        a, b = items_a[j], items_b[j]
        if a != b:
            at = next((r for r, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            at = min(len(a), len(b)) if at is None else at
            got = f"item lists differ from rank {at + 1}"
            ok = False
        elif scores_a[j].shape != scores_b[j].shape:
            got, ok = "score lists differ in length", False
        else:
            diff = float(np.max(np.abs(scores_a[j] - scores_b[j]), initial=0.0))
            ok = bool(diff <= spec.score_tolerance)  # NaN differences fail
            got = f"max score difference {diff:.3g}"
        col.check(
            f"user{u}",
            ok,
            input=_show_history(histories[u]),
            expected=f"identical items and scores (tolerance {spec.score_tolerance:g})",
            got=got,
        )
    return col.result


def run_recommender_suite(
    suite: RecommenderSuite,
    model: RecommenderLike,
    histories: Sequence[Sequence[str]],
    item_text: Mapping[str, str],
) -> BehaviourReport:
    """Run the recommender checks on users sampled (seeded) from ``histories``.

    ``histories``: item_id lists, oldest first (e.g. the frozen test split's histories); a
    case's id is ``user<position in histories>``. ``item_text``: item_id -> the text the model
    encodes for it, for the model's whole catalogue: its size is the denominator of
    ``max_rank_percentile``. ``model`` is left unchanged (new items go into a deep copy).
    """
    histories = [[str(i) for i in h] for h in histories]
    tests = [
        _check_history_excluded(suite, model, histories),
        _check_new_item(suite, model, histories, item_text),
        _check_deterministic(suite, model, histories),
    ]
    return BehaviourReport("recommender", tests)


# --------------------------------------------------------------------------------------------
# Comparison and report
# --------------------------------------------------------------------------------------------


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.1%}"


def _describe(failure: Mapping[str, str]) -> str:
    if "input" not in failure:
        return failure["id"]
    text = failure["input"]
    text = text if len(text) <= 80 else text[:77] + "..."
    return (
        f"{failure['id']} ({text!r}: expected {failure.get('expected')}, got {failure.get('got')})"
    )


def _paired(
    challenger: BehaviourReport, champion: BehaviourReport
) -> list[tuple[TestResult, TestResult]]:
    if challenger.suite != champion.suite:
        raise ValueError(
            f"behaviour reports of different suites: {challenger.suite} vs {champion.suite}"
        )
    chal = {t.name: t for t in challenger.tests}
    champ = {t.name: t for t in champion.tests}
    if list(chal) != list(champ):
        raise ValueError(
            f"behaviour reports hold different tests: {list(chal)} vs {list(champ)}; "
            "run the same suite on both models"
        )
    for name, t in chal.items():
        if t.n_cases != champ[name].n_cases:
            raise ValueError(
                f"behaviour test {name}: {t.n_cases} cases for the challenger, "
                f"{champ[name].n_cases} for the champion; run the same suite on both models"
            )
    return [(chal[name], champ[name]) for name in chal]


def compare_behaviour(
    challenger: BehaviourReport, champion: BehaviourReport | None, max_extra_failures: int
) -> tuple[bool, list[str]]:
    """Does the challenger behave no worse than the champion, within a tolerance?

    Counted over the cases applicable to both models: the challenger fails when it fails more
    than ``max_extra_failures`` cases more than the champion. The reasons name, per test, the
    cases the challenger fails and the champion passes. No champion (first run): passes,
    reporting the challenger's pass rate.
    """
    if max_extra_failures < 0:
        raise ValueError(f"max_extra_failures must be >= 0, got {max_extra_failures}")
    if champion is None:
        return True, [
            f"behaviour ({challenger.suite}): no champion to compare with; the challenger passes "
            f"{_percent(challenger.pass_rate)} of the applicable cases "
            f"({challenger.n_applicable - challenger.n_failed}/{challenger.n_applicable}; "
            f"{challenger.n_not_applicable} not applicable)"
        ]
    n_both = chal_failed = champ_failed = n_new = n_fixed = 0
    details: list[str] = []
    for chal, champ in _paired(challenger, champion):
        skip = set(chal.not_applicable_ids) | set(champ.not_applicable_ids)
        a = [i for i in chal.failed_ids if i not in skip]
        b = [i for i in champ.failed_ids if i not in skip]
        n_both += chal.n_cases - len(skip)
        chal_failed += len(a)
        champ_failed += len(b)
        newly = [i for i in a if i not in set(b)]
        n_new += len(newly)
        n_fixed += len(set(b) - set(a))
        if newly:
            shown = "; ".join(_describe(chal.failure(i)) for i in newly[:5])
            more = f"; and {len(newly) - 5} more" if len(newly) > 5 else ""
            details.append(
                f"behaviour {chal.name}: the challenger fails {len(newly)} case(s) the champion "
                f"passes: {shown}{more}"
            )
    extra = chal_failed - champ_failed
    ok = extra <= max_extra_failures
    summary = (
        f"{'PASS' if ok else 'FAIL'} behaviour ({challenger.suite}): the challenger fails "
        f"{chal_failed} of {n_both} cases applicable to both, the champion {champ_failed} "
        f"({extra:+d}; at most {max_extra_failures} more allowed); {n_new} newly failing, "
        f"{n_fixed} fixed"
    )
    return ok, [summary, *details]


def _md(text: object, limit: int = 120) -> str:
    value = " ".join(str(text).split())
    if len(value) > limit:
        value = value[: limit - 3] + "..."
    return value.replace("|", "\\|")


def _cell(t: TestResult | None) -> str:
    if t is None:
        return "–"
    passed = t.n_applicable - t.n_failed
    na = f", {t.n_not_applicable} n/a" if t.n_not_applicable else ""
    return f"{_percent(t.pass_rate)} ({passed}/{t.n_applicable}{na})"


def _status(t: TestResult | None, case_id: str) -> str:
    if t is None:
        return "–"
    if case_id in set(t.not_applicable_ids):
        return "n/a"
    return "fails" if case_id in set(t.failed_ids) else "passes"


def format_markdown(challenger: BehaviourReport, champion: BehaviourReport | None) -> str:
    """The behavioural section of the gate's markdown report: pass rates, failing cases."""
    champ = {t.name: t for t in champion.tests} if champion else {}
    lines = [
        f"## Behavioural checks ({challenger.suite})",
        "",
        "| test | kind | challenger | champion |",
        "|---|---|---|---|",
    ]
    for t in challenger.tests:
        lines.append(f"| {_md(t.name)} | {t.kind} | {_cell(t)} | {_cell(champ.get(t.name))} |")
    total = (
        f"{_percent(champion.pass_rate)} ({champion.n_applicable - champion.n_failed}/"
        f"{champion.n_applicable})"
        if champion
        else "–"
    )
    lines.append(
        f"| **all** | | {_percent(challenger.pass_rate)} "
        f"({challenger.n_applicable - challenger.n_failed}/{challenger.n_applicable}) "
        f"| {total} |"
    )
    failing = [t for t in challenger.tests if t.failed_ids]
    lines += ["", "### Cases the challenger fails", ""]
    if not failing:
        lines.append("None.")
    else:
        lines += [
            "| test | case | input | expected | got | champion |",
            "|---|---|---|---|---|---|",
        ]
        for t in failing:
            for case_id in t.failed_ids[:MAX_FAILURES_SHOWN]:
                f = t.failure(case_id)
                lines.append(
                    f"| {_md(t.name)} | {_md(case_id)} | {_md(f.get('input', ''))} | "
                    f"{_md(f.get('expected', ''))} | {_md(f.get('got', ''))} | "
                    f"{_status(champ.get(t.name), case_id)} |"
                )
            if t.n_failed > MAX_FAILURES_SHOWN:
                lines.append(
                    f"| {_md(t.name)} | … | {t.n_failed - MAX_FAILURES_SHOWN} more not shown "
                    "| | | |"
                )
    if champion:
        fixed = []
        for name, c in champ.items():
            mine = next((t for t in challenger.tests if t.name == name), None)
            ids = [i for i in c.failed_ids if _status(mine, i) == "passes"]
            if ids:
                shown = ", ".join(ids[:MAX_FAILURES_SHOWN])
                more = (
                    f" and {len(ids) - MAX_FAILURES_SHOWN} more"
                    if len(ids) > MAX_FAILURES_SHOWN
                    else ""
                )
                fixed.append(f"- {_md(name)}: {_md(shown, 2000)}{more}")
        lines += ["", "### Cases the champion fails and the challenger passes", ""]
        lines += fixed or ["None."]
    lines.append("")
    return "\n".join(lines)
