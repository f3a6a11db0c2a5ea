"""What the offline A/B gate decided, as data: estimates, rule outcomes, the decision.

Shared by :mod:`ml.release.gate.rules` (which decides) and :mod:`ml.release.gate.reports` (which
renders), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
    # Behavioural checks (ml.release.gate.behaviour): both reports and the comparison's outcome.
    behaviour: dict[str, Any] | None = None

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["promote"] = self.promote
        return data
