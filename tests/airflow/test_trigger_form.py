"""The trigger forms are generated from the pydantic models: every Param's type, bounds, title
and description are its model field's, and the form accepts exactly the values that params.yaml
(or the run option's model) accepts, at and just beyond every bound."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ml.core.config import load_params
from ml.core.errors import ConfigError
from ml.core.families import FAMILIES
from ml.orchestration.params import (
    BOUND_KEYS,
    FormField,
    drift_fields,
    field_schema,
    ingest_fields,
    retrain_fields,
)

FORMS: dict[str, list[FormField]] = {
    **{spec.dag_id: retrain_fields(spec) for spec in FAMILIES.values()},
    "shop_ingest": ingest_fields(),
    "drift_monitor": drift_fields(),
}


@pytest.fixture(scope="module")
def dagbag(repo_root: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(repo_root / "dags"))
    assert bag.import_errors == {}
    return bag


def form_cases(numeric_only: bool = False) -> list[tuple[str, FormField]]:
    return [
        (dag_id, form)
        for dag_id, fields in FORMS.items()
        for form in fields
        if not numeric_only or field_schema(form.model, form.field)["type"] in ("integer", "number")
    ]


def bounds_of(schema: dict[str, Any]) -> dict[str, Any]:
    """Bounds wherever the schema keeps them (top level or under allOf)."""
    found = {k: schema[k] for k in BOUND_KEYS if k in schema}
    for part in schema.get("allOf", []):
        found.update({k: part[k] for k in BOUND_KEYS if k in part})
    return found


def test_every_param_has_a_form_field(dagbag: Any) -> None:
    for dag_id, fields in FORMS.items():
        assert set(dagbag.dags[dag_id].params) == {f.name for f in fields}, dag_id


@pytest.mark.parametrize(("dag_id", "form"), form_cases(), ids=lambda v: getattr(v, "name", v))
def test_param_schema_is_the_pydantic_field(dagbag: Any, dag_id: str, form: FormField) -> None:
    param = dagbag.dags[dag_id].params.get_param(form.name)
    field = field_schema(form.model, form.field)
    assert param.schema["type"] == [field["type"], "null"]  # optional: never marked required
    assert bounds_of(param.schema) == {k: field[k] for k in BOUND_KEYS if k in field}
    assert param.schema.get("items") == field.get("items")
    assert param.schema["title"] == field["title"]
    assert param.description.startswith(field["description"])
    # Top-level minimum/maximum make Airflow's number widget clamp silently (-3 -> 1).
    assert "minimum" not in param.schema and "maximum" not in param.schema
    if form.target is not None:
        assert param.value is None  # empty = params.yaml's value, named in the description
        assert f"Empty = params.yaml ({form.target}: " in param.description


def probes(field: dict[str, Any]) -> list[Any]:
    """Values at and just beyond each bound of a numeric field (and a wrong type)."""
    step = 1 if field["type"] == "integer" else 1e-9
    values: list[Any] = ["a string"]
    for key in ("minimum", "exclusiveMinimum"):
        if key in field:
            values += [field[key] - step, field[key], field[key] + step]
    for key in ("maximum", "exclusiveMaximum"):
        if key in field:
            values += [field[key] - step, field[key], field[key] + step]
    return values


def pydantic_accepts(form: FormField, value: Any, params_file: Path) -> bool:
    try:
        if form.target is not None:
            load_params(params_file, {form.target: value})
        else:
            form.model.model_validate({form.field: value})
    except (ConfigError, ValueError):
        return False
    return True


@pytest.mark.parametrize(
    ("dag_id", "form"), form_cases(numeric_only=True), ids=lambda v: getattr(v, "name", v)
)
def test_form_and_pydantic_accept_the_same_values(
    dagbag: Any, dag_id: str, form: FormField, repo_root: Path
) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    field = field_schema(form.model, form.field)
    for value in probes(field):
        param = copy.deepcopy(dagbag.dags[dag_id].params.get_param(form.name))
        try:
            param.resolve(value=value)
            form_accepts = True
        except ParamValidationError:
            form_accepts = False
        assert form_accepts == pydantic_accepts(form, value, repo_root / "params.yaml"), value


def test_overrides_pattern_is_the_same_everywhere(dagbag: Any) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    for dag_id in FORMS:
        param = copy.deepcopy(dagbag.dags[dag_id].params.get_param("overrides"))
        param.resolve(value=["intent.train.batch_size=16", "@configs/hwu64.yaml"])
        with pytest.raises(ParamValidationError):
            param.resolve(value=["no equals sign"])


@pytest.mark.parametrize("dag_id", list(FORMS))
def test_every_dag_explains_itself(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.description and "shopflow" in dag.tags
    assert dag.start_date is None  # unpausing never starts a run for a passed cron time
    doc = dag.doc_md
    cron = getattr(dag.timetable, "timetable", dag.timetable).expression
    assert f"**Schedule.** Cron `{cron}`" in doc
    assert "**First unpause.**" in doc
    for form in FORMS[dag_id]:
        assert f"| `{form.name}` |" in doc
