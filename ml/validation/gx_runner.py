"""Runs the reviewed suites (expectations/*.json) through Great Expectations 1.x.

One file data context per run (GE state lives under ``params.paths.reports/validation/gx``,
out of git), a pandas data source with one dataframe asset and whole-dataframe batch
definition per suite, a validation definition and a Checkpoint (with UpdateDataDocsAction when
``validation.data_docs``). Importing GE takes seconds, so build one runner per run and reuse it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml.core.errors import ConfigError
from ml.validation.report import TABLE, CheckResult

if TYPE_CHECKING:
    from ml.core.config import Params

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
DATASOURCE = "shopflow_landing"
MAX_EXAMPLES = 5
MAX_EXAMPLE_CHARS = 80  # an overlong text is shown by its start and its length


def gx_root(params: Params) -> Path:
    """Where the GE file context (stores, Data Docs) lives: generated state, never committed."""
    return params.paths.reports / "validation"


def load_suite_json(name: str, suites_dir: Path = EXPECTATIONS_DIR) -> dict[str, Any]:
    """The reviewed suite ``<suites_dir>/<name>.json`` as a dict."""
    path = suites_dir / f"{name}.json"
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: expectation suite not found") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    if suite.get("name") != name or not isinstance(suite.get("expectations"), list):
        raise ConfigError(f"{path}: a suite needs 'name': {name!r} and an 'expectations' list")
    return suite


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a GE result value (NaN -> None, timestamps -> ISO text)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT or value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_EXAMPLE_CHARS:
        return f"{value[:MAX_EXAMPLE_CHARS]}... ({len(value)} chars)"
    if isinstance(value, dict):
        return {k: _clip(v) for k, v in value.items()}
    return value


def _raised(exception_info: Any) -> str | None:
    """The message of an exception GE caught while evaluating an expectation, if any."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message"))
    for value in exception_info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


# Suites validated on a table derived from one column report that column (the data's column).
DERIVED_FROM = {"utterance_labels": "intent"}
BOUND_KWARGS = ("min_value", "max_value", "value", "column_set", "type_", "type_list")


def _check_from_result(result: Any, suite: str, file_label: str) -> CheckResult:
    config = result.expectation_config
    kwargs = dict(config.kwargs)  # suite parameters are already resolved here
    table_column = kwargs.get("column", TABLE)
    column = str(DERIVED_FROM.get(suite, table_column))
    description = str((config.meta or {}).get("rule", ""))
    body = result.result or {}
    error = _raised(result.exception_info)
    check = CheckResult(
        rule=config.type,
        column=column,
        success=bool(result.success) and error is None,
        description=description,
        unexpected_count=body.get("unexpected_count"),
        observed_value=_plain(body.get("observed_value")),
        source="gx",
        suite=suite,
    )
    if check.success:
        return check
    # The per-label table is indexed by label, so its unexpected indices are the labels.
    examples = body.get("partial_unexpected_list") or []
    if suite == "utterance_labels" and body.get("partial_unexpected_index_list"):
        examples = [
            {"label": i, "value": v}
            for i, v in zip(body["partial_unexpected_index_list"], examples, strict=False)
        ]
    examples = _plain(examples)
    if suite not in DERIVED_FROM and all(not isinstance(e, dict | list) for e in examples):
        examples = list(dict.fromkeys(examples))  # GE repeats values (one bad value ten times)
    check.unexpected_examples = [_clip(e) for e in examples[:MAX_EXAMPLES]]
    where = "table" if column == TABLE else f"column '{column}'"
    if suite in DERIVED_FROM:
        where += f" (per-label table, column '{table_column}')"
    bounds = ", ".join(f"{k}={_plain(kwargs[k])}" for k in BOUND_KWARGS if k in kwargs)
    if error is not None:
        detail = f"could not be evaluated: {error}"
    elif check.unexpected_count is not None:
        total = body.get("element_count")
        examples_text = check.unexpected_examples
        detail = f"{check.unexpected_count} of {total} values unexpected, e.g. {examples_text}"
        if bounds:
            detail += f" (expected {bounds})"
    else:
        detail = f"observed {check.observed_value!r}, expected {bounds or 'see validation.json'}"
    check.message = f"{file_label}: {where}: rule {config.type} ({description}) failed: {detail}"
    return check


class GxRunner:
    """A GE file context with one checkpoint per (suite, skipped requirements)."""

    def __init__(self, root: Path, *, data_docs: bool, suites_dir: Path = EXPECTATIONS_DIR):
        os.environ["GX_ANALYTICS_ENABLED"] = "false"  # offline: never phone home
        # GE logs its import and every store write at INFO; our own log says what matters.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.root = root
        self.data_docs = data_docs
        self.suites_dir = suites_dir
        root.mkdir(parents=True, exist_ok=True)
        self.context = gx.get_context(mode="file", project_root_dir=str(root))
        # GE's own metric progress bars would flood logs; we show one bar per run instead.
        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        self.datasource = self.context.data_sources.add_or_update_pandas(DATASOURCE)
        self._checkpoints: dict[tuple[str, frozenset[str]], Any] = {}
        self._suites: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_params(cls, params: Params) -> GxRunner:
        return cls(gx_root(params), data_docs=params.validation.data_docs)

    def suite_json(self, name: str) -> dict[str, Any]:
        if name not in self._suites:
            self._suites[name] = load_suite_json(name, self.suites_dir)
        return self._suites[name]

    def _checkpoint(self, suite_name: str, skip: frozenset[str]) -> Any:
        key = (suite_name, skip)
        if key in self._checkpoints:
            return self._checkpoints[key]
        gx = self._gx
        from great_expectations.checkpoint import UpdateDataDocsAction
        from great_expectations.core.expectation_suite import ExpectationSuite

        raw = self.suite_json(suite_name)
        kept = [e for e in raw["expectations"] if (e.get("meta") or {}).get("requires") not in skip]
        name = suite_name if not skip else f"{suite_name}__without_{'_'.join(sorted(skip))}"
        suite = ExpectationSuite(
            name=name, expectations=kept, meta=raw.get("meta") or {}, notes=raw.get("notes")
        )
        suite = self.context.suites.add_or_update(suite)
        try:
            asset = self.datasource.get_asset(suite_name)
        except LookupError:
            asset = self.datasource.add_dataframe_asset(suite_name)
        try:
            batch_definition = asset.get_batch_definition("whole_dataframe")
        except (KeyError, LookupError):
            batch_definition = asset.add_batch_definition_whole_dataframe("whole_dataframe")
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        actions = [UpdateDataDocsAction(name="update_data_docs")] if self.data_docs else []
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name,
                validation_definitions=[definition],
                actions=actions,
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": MAX_EXAMPLES,
                },
            )
        )
        self._checkpoints[key] = checkpoint
        return checkpoint

    def run(
        self,
        suite_name: str,
        frame: pd.DataFrame,
        parameters: dict[str, Any],
        *,
        skipped: dict[str, str] | None = None,
        file_label: str,
        run_name: str,
    ) -> list[CheckResult]:
        """Validate ``frame`` with a suite; skipped requirements give skipped results."""
        from great_expectations.core.run_identifier import RunIdentifier

        skipped = skipped or {}
        raw = self.suite_json(suite_name)
        checks: list[CheckResult] = []
        for exp in raw["expectations"]:
            meta = exp.get("meta") or {}
            requirement = meta.get("requires")
            if requirement in skipped:
                checks.append(
                    CheckResult(
                        rule=exp["type"],
                        column=exp.get("kwargs", {}).get("column", TABLE),
                        success=True,
                        skipped=True,
                        description=str(meta.get("rule", "")),
                        message=f"{file_label}: skipped: {skipped[requirement]}",
                        source="gx",
                        suite=suite_name,
                    )
                )
        checkpoint = self._checkpoint(suite_name, frozenset(k for k in skipped if k))
        outcome = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_name),
        )
        for suite_result in outcome.run_results.values():
            checks.extend(
                _check_from_result(r, suite_name, file_label) for r in suite_result.results
            )
        return checks

    def data_docs_index(self) -> str | None:
        """Path of the local Data Docs index page, when Data Docs are built."""
        if not self.data_docs:
            return None
        index = self.root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        return str(index) if index.exists() else None
