"""What a validation run found: one result per rule, gathered per partition.

Kept free of Great Expectations types so reports can be built, written and read without
importing GE (it takes seconds to import).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TABLE = "(table)"  # the "column" of a rule that concerns the whole file or table


@dataclass
class CheckResult:
    """One rule applied to one partition file: a read rule or a GE expectation."""

    rule: str  # read rule name or GE expectation type
    column: str  # column name, or TABLE
    success: bool
    description: str = ""  # the rule in words (from the suite's meta or the read rule)
    message: str = ""  # what went wrong, written for the user
    unexpected_count: int | None = None
    unexpected_examples: list[Any] = field(default_factory=list)
    observed_value: Any = None
    skipped: bool = False  # not evaluated (e.g. no reference distribution yet); never a failure
    source: str = "read"  # "read" (read rules) or "gx" (a suite expectation)
    suite: str | None = None


@dataclass
class PartitionReport:
    """The outcome of validating one landing partition."""

    dataset: str
    partition: str  # the partition folder
    date: str | None
    files: list[str]
    content_sha256: str | None
    validated_at: str
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: int | None = None
    # Set by validate_landing: accepted / quarantined / skipped, and where the data went.
    status: str | None = None
    destination: str | None = None
    # Personal data scrubbed on the way to paths.validated: counts by type, never values.
    pii: dict[str, Any] | None = None

    @property
    def success(self) -> bool:
        return all(c.success or c.skipped for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and not c.skipped]

    def failure_lines(self) -> list[str]:
        """One self-contained line per failed rule: file, column, rule and what was seen."""
        return [f.message for f in self.failures]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["success"] = self.success
        out["n_failed"] = len(self.failures)
        out["n_skipped"] = sum(c.skipped for c in self.checks)
        return out

    def write(self, path: Path) -> Path:
        path.write_text(
            json.dumps(self.to_dict(), indent=2, default=str, sort_keys=False) + "\n",
            encoding="utf-8",
        )
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionReport:
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["checks"] = [CheckResult(**c) for c in data.get("checks", [])]
        return cls(**kwargs)
