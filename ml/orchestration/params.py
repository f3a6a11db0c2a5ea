"""The DAGs' trigger forms, generated from the pydantic models that validate the same values
everywhere else, so the form, ``--set`` and params.yaml cannot disagree on type, bounds or
meaning: each form field names its model field, and its title, description, type and bounds are
read from that field's JSON schema.

A field either overrides a params.yaml key (``target``, a dotted key; empty = params.yaml's
value, shown in the description) or is an option of the run itself (dry_run, force_promote,
overrides; the drift check's options). The run's values become one dict of dotted keys to typed
values (:func:`conf_overrides`) that reaches every step in-process.

Bounds sit under ``allOf`` rather than as top-level ``minimum``/``maximum``: Airflow's number
widget clamps to top-level bounds silently (epochs -3 became 1), whereas a bound in ``allOf``
is checked when the run is triggered: Airflow refuses it (HTTP 400, shown at the top of the
trigger dialog) with "Invalid input for param epochs: -3 is less than the minimum of 1". Airflow
3.3's form has no per-field validation hook, so the limits are also written in each field's
description. Every field is nullable, so none is marked required.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ml.core.config import flatten_overrides, parse_override_entry
from ml.core.config.data import GeneratorConfig
from ml.core.config.intent import IntentTrainConfig
from ml.core.config.recommender import RecommenderTrainConfig
from ml.core.errors import ConfigError
from ml.monitoring.options import DriftRunOptions

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.core.families import Family

# section.key=value, or @file.yaml (a profile such as configs/bitext.yaml, relative to the
# project folder).
OVERRIDE_PATTERN = r"^(@.+|[A-Za-z_][\w.@-]*=.*)$"
_OVERRIDE = re.compile(OVERRIDE_PATTERN)
BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern")


class RunOptions(BaseModel):
    """Options of one retrain run that are not params.yaml settings."""

    model_config = ConfigDict(extra="forbid")

    force_promote: bool = Field(
        False,
        title="Force promote",
        description="Promote the challenger even if the gate rejects it (recorded as forced "
        "in the promotion history).",
    )
    dry_run: bool = Field(
        False,
        title="Dry run",
        description="Train, evaluate and gate, but never move the registry aliases.",
    )
    overrides: list[Annotated[str, StringConstraints(pattern=OVERRIDE_PATTERN)]] = Field(
        default_factory=list,
        title="params.yaml overrides",
        description="Extra settings, one per line: section.key=value (e.g. "
        "intent.train.batch_size=16) or @profile.yaml.",
    )


@dataclass(frozen=True)
class FormField:
    """One trigger-form Param: the pydantic field it is generated from and, for a params.yaml
    setting, the dotted key it overrides."""

    name: str
    model: type[BaseModel]
    field: str
    target: str | None = None


OVERRIDES = FormField("overrides", RunOptions, "overrides")


def retrain_fields(spec: Family) -> list[FormField]:
    """The retrain DAG's form: model settings of the family, the synthetic day range, options."""
    models: dict[str, type[BaseModel]] = {
        "intent": IntentTrainConfig,
        "recommender": RecommenderTrainConfig,
    }
    train_model = models[spec.name]
    return [
        FormField("epochs", train_model, "epochs", spec.epochs_key),
        FormField("learning_rate", train_model, "learning_rate", spec.learning_rate_key),
        FormField("sample_size", train_model, spec.sample_key.rsplit(".", 1)[1], spec.sample_key),
        *day_fields(),
        FormField("force_promote", RunOptions, "force_promote"),
        FormField("dry_run", RunOptions, "dry_run"),
        OVERRIDES,
    ]


def day_fields() -> list[FormField]:
    """The synthetic shop's day range (ingest.source synthetic)."""
    return [
        FormField("first_day", GeneratorConfig, "first_day", "generator.first_day"),
        FormField("days", GeneratorConfig, "days", "generator.days"),
    ]


def ingest_fields() -> list[FormField]:
    return [*day_fields(), OVERRIDES]


def drift_fields() -> list[FormField]:
    return [
        FormField("model_path", DriftRunOptions, "model_path"),
        FormField("sample", DriftRunOptions, "sample"),
        FormField("thresholds", DriftRunOptions, "thresholds"),
        OVERRIDES,
    ]


def field_schema(model: type[BaseModel], field: str) -> dict[str, Any]:
    """The JSON schema pydantic gives ``model.field``, an optional's null branch folded in
    (``type`` is then the non-null type; ``nullable`` says it was optional)."""
    schema = dict(model.model_json_schema()["properties"][field])
    branches = schema.pop("anyOf", None)
    if branches:
        typed = [b for b in branches if b.get("type") != "null"]
        if len(typed) != 1:
            raise TypeError(
                f"{model.__name__}.{field}: a form field needs one type, got {branches}"
            )
        schema.update(typed[0])
        schema["nullable"] = len(typed) < len(branches)
    return schema


def limits_text(schema: dict[str, Any]) -> str:
    kind = "Whole number" if schema.get("type") == "integer" else "Number"
    low = (f">= {schema['minimum']}" if "minimum" in schema else None) or (
        f"> {schema['exclusiveMinimum']}" if "exclusiveMinimum" in schema else None
    )
    high = (f"<= {schema['maximum']}" if "maximum" in schema else None) or (
        f"< {schema['exclusiveMaximum']}" if "exclusiveMaximum" in schema else None
    )
    limits = " and ".join(x for x in (low, high) if x)
    if schema.get("type") not in ("integer", "number"):
        return ""
    return f"{kind}{', ' + limits if limits else ''}. "


def param_schema(form: FormField) -> dict[str, Any]:
    """The Param's JSON schema: the pydantic field's type (nullable) and bounds."""
    schema = field_schema(form.model, form.field)
    out: dict[str, Any] = {"type": [schema["type"], "null"], "title": schema.get("title")}
    bounds = {k: schema[k] for k in BOUND_KEYS if k in schema}
    if bounds:
        out["allOf"] = [bounds]
    if "items" in schema:
        out["items"] = schema["items"]
    return out


def form_param(form: FormField, params: Params | None = None) -> Any:
    """The Airflow Param of one form field; a params.yaml setting defaults to empty (= the
    value in params.yaml, named in the description)."""
    from airflow.sdk import Param

    schema = field_schema(form.model, form.field)
    text = f"{schema.get('description', '')} {limits_text(schema)}".strip()
    if form.target is None:
        default = schema.get("default", [] if schema["type"] == "array" else None)
    else:
        default = None
        current = _current(params, form.target) if params is not None else "see params.yaml"
        text += f" Empty = params.yaml ({form.target}: {json.dumps(current)})."
    return Param(default, description=text, **param_schema(form))


def _current(params: Params, dotted: str) -> Any:
    node: Any = params
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def form_params(fields: list[FormField], params: Params | None = None) -> dict[str, Any]:
    return {form.name: form_param(form, params) for form in fields}


def conf_overrides(
    fields: list[FormField], conf: dict[str, Any], project_dir: Path | None = None
) -> dict[str, Any]:
    """The run's form values as params.yaml overrides: ``{dotted key: typed value}``, in-process
    (a learning rate of 5e-05 stays a float). The free-form ``overrides`` entries are parsed
    once here (``@file`` profiles relative to ``project_dir``), after the typed fields."""
    out: dict[str, Any] = {
        form.target: conf[form.name]
        for form in fields
        if form.target is not None and conf.get(form.name) is not None
    }
    for key, value in checked_overrides(list(conf.get("overrides") or []), project_dir).items():
        out[key] = value
    return out


def checked_overrides(entries: list[str], project_dir: Path | None = None) -> dict[str, Any]:
    """Free-form ``section.key=value`` / ``@file.yaml`` entries as one flat dict, refused early
    (naming the entry) when malformed."""
    merged: dict[str, Any] = {}
    for entry in entries:
        if not _OVERRIDE.match(entry):
            raise ConfigError(f"run override {entry!r} is not of the form section.key=value")
        if entry.startswith("@"):
            path = Path(entry[1:])
            if project_dir is not None and not path.is_absolute():
                path = project_dir / path
            merged.update(flatten_overrides(path))
            continue
        key, value = parse_override_entry(entry)
        merged[key] = value
    return merged
