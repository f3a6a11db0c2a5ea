"""The ``doc_md`` of each DAG (the "Docs" panel in the Airflow UI): what it does, when it runs,
what each trigger-form Param means (from the same form fields as the form itself) and what
happens on first unpause. Generated, so the docs cannot drift from the form or the schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml.orchestration.params import FormField, field_schema, limits_text, retrain_fields

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.core.families import Family
    from ml.orchestration.settings import OrchestrationSettings

FIRST_UNPAUSE = (
    "**First unpause.** New DAGs start paused. Unpausing starts nothing at once: the first "
    "scheduled run is the next cron time (no start date, so no run for a time already passed). "
    "Triggering from the UI runs once with the form's values; untick *Unpause on trigger* to "
    "keep the schedule off."
)


def params_table(fields: list[FormField], params: Params) -> str:
    """Markdown table of the form: Param, title, meaning and limits, what it overrides."""
    rows = ["| Param | Title | Meaning | Overrides |", "|---|---|---|---|"]
    for form in fields:
        schema = field_schema(form.model, form.field)
        target = f"`{form.target}`" if form.target else "run option"
        rows.append(
            f"| `{form.name}` | {schema.get('title', '')} | {schema.get('description', '')} "
            f"{limits_text(schema)}"
            f"| {target} |"
        )
    return "\n".join(rows)


def retrain_doc(spec: Family, settings: OrchestrationSettings, params: Params) -> str:
    return f"""### Retrain the {spec.name} model

preflight -> ingest -> validate -> preprocess -> train -> evaluate -> gate -> promote | reject
-> summary. The challenger and the champion are scored by the same code on the same frozen
test split; the gate promotes only when the rules in params.yaml `gate.{spec.name}` hold. The
`summary` task's log has the decision, the metrics and the MLflow run link.

**Schedule.** Cron `{settings.schedule_for(spec.name)}` (UTC; params.yaml `schedules.{spec.name}`
or `SHOPFLOW_{spec.name.upper()}_SCHEDULE`), or as soon as `drift_monitor` flags
`shopflow://drift/{spec.name}`. One run at a time.

{FIRST_UNPAUSE}

**Trigger form.** Empty fields use params.yaml; values outside a field's bounds are refused
before the run starts.

{params_table(retrain_fields(spec), params)}
"""


def _s3_arrival_doc(params: Params) -> str:
    if params.ingest.source != "s3":
        return (
            "With `ingest.source: s3` a `wait_for_partitions` sensor first waits for new "
            "partitions in the landing bucket."
        )
    cfg = params.ingest.s3
    ending = (
        "skipped (ingest and validate too), not failed"
        if cfg.sensor_soft_fail
        else "failed (sensor timeout)"
    )
    return f"""**Arrival of partitions.** `wait_for_partitions` lists
`s3://{cfg.bucket}/{cfg.prefix.strip("/")}` (`<dataset>/date=YYYY-MM-DD/part-*.csv|.parquet`)
every {cfg.sensor_poke_interval_s} s against the ingest ledger (`data/landing/.s3-ledger.json`:
key, ETag, size of what was ingested) and succeeds as soon as a new or re-uploaded partition
file is there; its XCom is the keys. Between pokes it holds no worker slot (reschedule mode).
After {cfg.sensor_timeout_s} s without one the run ends {ending}
(params.yaml `ingest.s3.sensor_poke_interval_s`, `sensor_timeout_s`, `sensor_soft_fail`).
Credentials: the worker's `AWS_*` or the Airflow connection `SHOPFLOW_AWS_CONN_ID`."""


def ingest_doc(settings: OrchestrationSettings, params: Params, fields: list[FormField]) -> str:
    sensor = "wait_for_partitions -> " if params.ingest.source == "s3" else ""
    return f"""### Ingest and validate new shop data

{sensor}ingest (source: params.yaml `ingest.source`, now `{params.ingest.source}`) -> validate
(Great Expectations; bad partitions are quarantined with a reason). Accepted data updates the
`shopflow://validated/<dataset>` assets, which start `drift_monitor`.

{_s3_arrival_doc(params)}

**Schedule.** Cron `{settings.schedule_for("ingest")}` (UTC; params.yaml `schedules.ingest`).

{FIRST_UNPAUSE}

{params_table(fields, params)}
"""


def drift_doc(settings: OrchestrationSettings, params: Params, fields: list[FormField]) -> str:
    return f"""### Drift monitor

For each model: compare newly validated data with the data the champion was trained on (label
mix, lengths, embedding centroid, item popularity, categories, new items, champion confidence).
A signal over its threshold flags `shopflow://drift/<family>`, which starts that family's
retrain DAG.

**Schedule.** Cron `{settings.schedule_for("drift")}` (UTC; params.yaml `schedules.drift`), and
whenever new validated data arrives.

{FIRST_UNPAUSE}

{params_table(fields, params)}
"""
