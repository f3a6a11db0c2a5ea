"""Airflow wiring for the pipelines, written once for both model families.

The DAG files in ``dags/`` are two lines each: ``build_retrain_dag("intent")``. Every task is a
few lines calling :func:`ml.cli.run_step` in-process (ml.orchestration.runtime), the same entry
point as ``python -m ml`` and the DVC stages ("one library, two callers"); nothing here knows
how a model is trained.

DAGs and how they start each other (data-aware scheduling, no loops)::

    shop_ingest (daily)        [wait_for_partitions ->] ingest -> validate
                                 --outlets--> shopflow://validated/<dataset>
    drift_monitor (daily, or   check_<family> -> decide_<family> -> flag_<family>
      on validated data)         --outlet--> shopflow://drift/<family> | no_drift_<family>
    <family>_retrain (weekly,  preflight -> ingest -> validate [-> pull_data] -> preprocess
      or on the drift asset)     -> train [-> push_data] -> evaluate -> gate -> decide
                                 -> promote | reject -> summary

wait_for_partitions exists with ``ingest.source: s3``: a sensor in reschedule mode waiting for a
new or re-uploaded partition in the landing bucket (ml.data.s3_landing).

pull_data / push_data exist in dvc preprocess mode (ml.stack.data_versions), and
record_dvc_lock after evaluate (dvc.lock records train/evaluate unless the run overrode their
params); with SHOPFLOW_TRAIN_RUNNER=docker|kubernetes, train is train_command -> train
(container or pod) -> record_training (ml.orchestration.containers).

A retrain DAG's own validate emits no asset (it would re-trigger the monitor, which would
re-trigger it after a rejected challenger). Each registered version is tagged with the dates it
was trained on, so the monitor compares new data with the champion's, not just yesterday's.

No DAG has a start_date: unpausing one never starts a run for a cron time that has passed
(with a start_date and catchup off, Airflow runs the latest past interval at once); its first
scheduled run is the next cron time. Airflow is imported inside the factories only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ml.core.families import FAMILIES, Family, get_family
from ml.orchestration import containers, steps
from ml.orchestration.dag_docs import drift_doc, ingest_doc, retrain_doc
from ml.orchestration.params import (
    conf_overrides,
    drift_fields,
    form_params,
    ingest_fields,
    retrain_fields,
)
from ml.orchestration.runtime import RunContext, close_mlflow_runs_callback, load_run_params
from ml.orchestration.settings import OrchestrationSettings
from ml.orchestration.summary import (
    build_summary,
    choose_branch,
    format_summary,
    mlflow_run_link,
    read_metrics,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from ml.core.config import Params

log = logging.getLogger(__name__)

ContextOf = Callable[[], RunContext]


def validated_asset_uri(dataset: str) -> str:
    """New validated data of one dataset: emitted by shop_ingest, listened to by drift_monitor."""
    return f"shopflow://validated/{dataset}"


def drift_asset_uri(family: str) -> str:
    """Drift found for one family: emitted by drift_monitor, starts the family's retraining."""
    return f"shopflow://drift/{family}"


def _retry_args(settings: OrchestrationSettings) -> dict[str, Any]:
    return {
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=settings.max_retry_delay_s),
    }


def _cron(cron: str) -> Any:
    from airflow.sdk import CronTriggerTimetable

    # run_immediately=False and no start_date: the first run is the next cron time.
    return CronTriggerTimetable(cron, timezone="UTC", run_immediately=False)


def _schedule(family: str, settings: OrchestrationSettings) -> Any:
    """Weekly cron, or as soon as the drift monitor flags this family.

    Not on the validated-data assets themselves: the retrain DAG validates too, and a DAG
    triggered by its own outlets would loop."""
    from airflow.sdk import Asset, AssetOrTimeSchedule

    return AssetOrTimeSchedule(
        timetable=_cron(settings.schedule_for(family)), assets=[Asset(drift_asset_uri(family))]
    )


def _context_of(spec: Family, settings: OrchestrationSettings) -> ContextOf:
    """The running task's RunContext (params loaded once per call: call it once per task)."""
    fields = retrain_fields(spec)

    def context() -> RunContext:
        from airflow.sdk import get_current_context

        airflow_context = get_current_context()
        conf = dict(airflow_context["params"])
        overrides = conf_overrides(fields, conf, settings.project_dir)
        run = (spec.dag_id, str(airflow_context["run_id"]))
        return RunContext.create(settings, conf, overrides, run=run)

    return context


def _data_tasks(spec: Family, settings: OrchestrationSettings, context: ContextOf) -> Any:
    """preflight, ingest, validate, preprocess (and the DVC data-version tasks)."""
    from airflow.sdk import task

    @task(**_retry_args(settings))
    def preflight() -> dict[str, Any]:
        # Fail in seconds, naming the setting to fix, when a store or its credentials are not
        # usable: before any data moves or an hour of training is spent.
        return context().run(steps.preflight_argv(settings))

    @task(pool=settings.data_pool)
    def ingest() -> dict[str, Any]:
        ctx = context()
        return ctx.record("ingest", ctx.run(["ingest"]))

    # A DataValidationError fails this task (no retry: the data will not get better) with
    # the validation message; everything downstream is then upstream_failed.
    @task(pool=settings.data_pool)
    def validate() -> dict[str, Any]:
        ctx = context()
        result = {ds: ctx.run(["validate", "--dataset", ds]) for ds in spec.datasets}
        return ctx.record("validate", result)

    @task(pool=settings.data_pool)
    def preprocess() -> dict[str, Any]:
        if settings.preprocess_mode == "dvc":
            return steps.run_dvc_stage(spec.dvc_preprocess_stage, settings)
        return context().run(["preprocess", spec.preprocess])

    return preflight(), ingest(), validate(), preprocess()


def _sync_tasks(spec: Family, settings: OrchestrationSettings, context: ContextOf) -> Any:
    """pull_data, push_data, record_dvc_lock (dvc preprocess mode)."""
    from airflow.sdk import task

    @task(pool=settings.data_pool, **_retry_args(settings))
    def pull_data() -> dict[str, Any]:
        return steps.pull_data_version(spec, settings)

    @task(pool=settings.data_pool, **_retry_args(settings))
    def push_data(train_result: dict[str, Any]) -> dict[str, Any]:
        return steps.push_data_version(spec, context(), train_result)

    @task(pool=settings.data_pool, **_retry_args(settings))
    def record_dvc_lock() -> dict[str, Any]:
        return steps.record_dvc_results(spec, context())

    return pull_data, push_data, record_dvc_lock


def _model_tasks(spec: Family, settings: OrchestrationSettings, context: ContextOf) -> Any:
    """train (in-process; containers: see _container_training_tasks), evaluate, gate."""
    from airflow.sdk import task

    train_opts: dict[str, Any] = _retry_args(settings)
    if settings.train_pool:
        train_opts["pool"] = settings.train_pool
    if settings.train_queue:
        train_opts["queue"] = settings.train_queue
    closing = close_mlflow_runs_callback(spec, settings)

    @task(on_failure_callback=closing, **train_opts)
    def train() -> dict[str, Any]:
        return steps.train_once(spec, context())

    @task(**_retry_args(settings))
    def evaluate() -> dict[str, Any]:
        ctx = context()
        return ctx.record("evaluate", ctx.run(["evaluate", spec.name]))

    @task
    def gate() -> dict[str, Any]:
        ctx = context()
        assert ctx.ledger is not None
        done = ctx.ledger.get("gate")  # the gate tags the version: decide once per run
        if done is not None:
            return done
        return ctx.record("gate", ctx.run(["gate", spec.name]))

    if settings.train_runner == "local":
        t_train = train()
        train_start = t_train
    else:  # train_command -> train (container or pod) -> record_training
        train_start, t_train = _container_training_tasks(spec, settings, train_opts, context)
    return train_start, t_train, evaluate(), gate()


def _release_tasks(spec: Family, settings: OrchestrationSettings, context: ContextOf) -> Any:
    """decide -> promote | reject -> summary."""
    from airflow.sdk import get_current_context, task

    @task.branch
    def decide(gate_result: dict[str, Any]) -> str:
        return choose_branch(gate_result, dict(get_current_context()["params"]))

    @task
    def promote(gate_result: dict[str, Any]) -> dict[str, Any]:
        ctx = context()
        run_id = str(get_current_context()["run_id"])
        verb = ["registry", "promote", spec.name, "--pipeline-run", run_id]
        forced = not gate_result.get("promote")
        if forced:
            verb += ["--force", "--reason", "force_promote from the DAG run's Params"]
        # registry.promote is a no-op when the version is already champion (retry-safe).
        return {"action": "promote", "forced": forced, **ctx.run(verb)}

    @task
    def reject(gate_result: dict[str, Any]) -> dict[str, Any]:
        conf = dict(get_current_context()["params"])
        why = "dry run" if conf.get("dry_run") else "; ".join(gate_result.get("reasons", []))
        log.info("challenger not promoted: %s", why)
        return {"action": "reject", "why": why}

    @task(trigger_rule="none_failed_min_one_success")
    def summary(train_result: dict[str, Any], gate_result: dict[str, Any]) -> dict[str, Any]:
        ctx = context()
        ti = get_current_context()["ti"]
        outcome = ti.xcom_pull(task_ids="promote") or ti.xcom_pull(task_ids="reject")
        synced = steps.syncs_data(settings)
        result = build_summary(
            spec,
            train=train_result,
            gate=gate_result,
            metrics=read_metrics(ctx, spec.name),
            outcome=outcome,
            conf=ctx.conf,
            link=mlflow_run_link(ctx, (train_result.get("registration") or {}).get("run_id")),
            data_version=ti.xcom_pull(task_ids="push_data") if synced else None,
        )
        log.info("retrain summary\n%s", format_summary(result))
        return ctx.record("summary", result)  # also a file: the demo and tests read it

    return decide, promote, reject, summary


def build_retrain_dag(family: str, settings: OrchestrationSettings | None = None) -> DAG:
    """ingest -> validate -> preprocess -> train -> evaluate -> gate -> promote | reject -> summary
    (one DAG per family, same wiring)."""
    from airflow.sdk import dag

    spec = get_family(family)
    settings = settings or OrchestrationSettings.from_env()
    context = _context_of(spec, settings)
    params = load_run_params(settings, {})

    @dag(
        dag_id=spec.dag_id,
        description=f"Retrain the {spec.name} model; the gate decides whether it is promoted.",
        schedule=_schedule(family, settings),
        catchup=False,
        max_active_runs=1,
        params=form_params(retrain_fields(spec), params),
        default_args={"owner": "shopflow", "retries": 0},
        tags=["shopflow", "retrain", family],
        doc_md=retrain_doc(spec, settings, params),
        render_template_as_native_obj=True,
    )
    def retrain() -> None:
        t_preflight, t_ingest, t_validate, t_pre = _data_tasks(spec, settings, context)
        train_start, t_train, t_eval, t_gate = _model_tasks(spec, settings, context)
        t_preflight >> t_ingest >> t_validate
        if steps.syncs_data(settings):
            # ... -> validate -> pull_data -> preprocess -> train -> push_data -> evaluate -> ...
            pull_data, push_data, _ = _sync_tasks(spec, settings, context)
            t_validate >> pull_data() >> t_pre >> train_start
            t_train >> push_data(t_train) >> t_eval >> t_gate
        else:
            t_validate >> t_pre >> train_start
            t_train >> t_eval >> t_gate
        if settings.preprocess_mode == "dvc":
            # dvc.lock records the train and evaluate steps this run did (as `dvc repro` would).
            t_eval >> _sync_tasks(spec, settings, context)[2]()
        decide, promote, reject, summary = _release_tasks(spec, settings, context)
        # TaskFlow passes XComArgs where the functions declare the values they receive.
        t_promote, t_reject = promote(t_gate), reject(t_gate)
        decide(t_gate) >> [t_promote, t_reject]
        [t_promote, t_reject] >> summary(t_train, t_gate)

    return retrain()


def _container_training_tasks(
    spec: Family,
    settings: OrchestrationSettings,
    train_opts: dict[str, Any],
    context: ContextOf,
) -> tuple[Any, Any]:
    """Training in a container or pod (SHOPFLOW_TRAIN_RUNNER), inside a retrain DAG's ``@dag``
    function: ``train_command`` (the argv, from the run's Params) -> ``train`` (the container
    or pod, with the train pool/queue/retries) -> ``record_training`` (reads --output-json,
    tags and records the version, returns what ``train_once`` returns in-process).

    Returns (the first task, the task whose XCom is the train result).
    """
    from airflow.sdk import task

    @task
    def train_command() -> list[str]:
        return steps.container_train_args(spec, context())

    # none_failed: also after a skipped train (already trained in this DAG run).
    @task(trigger_rule="none_failed", **_retry_args(settings))
    def record_training() -> dict[str, Any]:
        return steps.record_container_training(spec, context())

    t_command = train_command()
    t_container = containers.train_operator(
        settings, spec.name, t_command, task_id="train", **train_opts
    )
    t_record = record_training()
    t_command >> t_container >> t_record
    return t_command, t_record


def _plain_context(settings: OrchestrationSettings, fields: list[Any]) -> RunContext:
    """A task's RunContext in DAGs without a ledger (ingest, drift monitor)."""
    from airflow.sdk import get_current_context

    conf = dict(get_current_context()["params"])
    return RunContext.create(settings, conf, conf_overrides(fields, conf, settings.project_dir))


def build_shop_ingest_dag(settings: OrchestrationSettings | None = None) -> DAG:
    """Daily: bring new shop data in and validate it; accepted data updates the validated-data
    assets (which start the drift monitor)."""
    from airflow.sdk import Asset, dag, task

    settings = settings or OrchestrationSettings.from_env()
    datasets = sorted({d for spec in FAMILIES.values() for d in spec.datasets})
    fields = ingest_fields()
    params = load_run_params(settings, {})

    @dag(
        dag_id="shop_ingest",
        description="Bring new shop data into the landing area and validate it.",
        schedule=_cron(settings.schedule_for("ingest")),
        catchup=False,
        max_active_runs=1,
        params=form_params(fields, params),
        default_args={"owner": "shopflow", "retries": 0},
        tags=["shopflow", "data"],
        doc_md=ingest_doc(settings, params, fields),
    )
    def shop_ingest() -> None:
        @task(pool=settings.data_pool)
        def ingest(announced: list[str] | None = None) -> dict[str, Any]:
            result = _plain_context(settings, fields).run(["ingest"])
            if announced is not None:  # what the sensor saw; ingest lists again and takes all
                result["announced_by_sensor"] = announced
            return result

        @task(pool=settings.data_pool, outlets=[Asset(validated_asset_uri(d)) for d in datasets])
        def validate() -> dict[str, Any]:
            return _plain_context(settings, fields).run(["validate"])

        if params.ingest.source == "s3":
            ingest(_arrival_sensor(settings, fields, params)) >> validate()
        else:
            ingest() >> validate()

    return shop_ingest()


def _arrival_sensor(settings: OrchestrationSettings, fields: list[Any], params: Params) -> Any:
    """``wait_for_partitions``: lists the S3 landing bucket against the ingest ledger (the same
    function ``python -m ml ingest`` uses) until a new or re-uploaded partition file is there;
    its keys are the XCom. Reschedule mode: between pokes the task holds no worker slot.
    Timing and soft_fail come from params.yaml ``ingest.s3.sensor_*`` (read when the DAG is
    parsed)."""
    from airflow.sdk import PokeReturnValue, task

    cfg = params.ingest.s3

    @task.sensor(
        task_id="wait_for_partitions",
        mode="reschedule",
        poke_interval=cfg.sensor_poke_interval_s,
        timeout=cfg.sensor_timeout_s,
        soft_fail=cfg.sensor_soft_fail,
    )
    def wait_for_partitions() -> PokeReturnValue:
        keys = _plain_context(settings, fields).pending_landing_keys()
        log.info("%d new or re-uploaded partition file(s) in the landing bucket", len(keys))
        return PokeReturnValue(is_done=bool(keys), xcom_value=keys)

    return wait_for_partitions()


def build_drift_monitor_dag(settings: OrchestrationSettings | None = None) -> DAG:
    """Per family: drift check -> branch -> flag the family's drift asset (which starts its
    retrain DAG) or do nothing. Runs daily and whenever new data is validated."""
    from airflow.sdk import Asset, AssetAny, AssetOrTimeSchedule, dag

    settings = settings or OrchestrationSettings.from_env()
    datasets = sorted({d for spec in FAMILIES.values() for d in spec.datasets})
    fields = drift_fields()
    params = load_run_params(settings, {})

    @dag(
        dag_id="drift_monitor",
        description="Compare new validated data with each champion's training data.",
        schedule=AssetOrTimeSchedule(
            timetable=_cron(settings.schedule_for("drift")),
            assets=AssetAny(*(Asset(validated_asset_uri(d)) for d in datasets)),
        ),
        catchup=False,
        max_active_runs=1,
        params=form_params(fields, params),
        default_args={"owner": "shopflow", "retries": 0},
        tags=["shopflow", "monitoring"],
        doc_md=drift_doc(settings, params, fields),
    )
    def drift_monitor() -> None:
        for family in FAMILIES:
            _drift_tasks(family, settings, fields)

    return drift_monitor()


def _drift_tasks(family: str, settings: OrchestrationSettings, fields: list[Any]) -> None:
    """check_<family> -> decide_<family> -> flag_<family> | no_drift_<family>."""
    from airflow.sdk import Asset, get_current_context, task

    drift_asset = Asset(drift_asset_uri(family))

    @task(task_id=f"check_{family}")
    def check() -> dict[str, Any]:
        ctx = _plain_context(settings, fields)
        return ctx.run(steps.drift_argv(family, ctx.conf))

    @task.branch(task_id=f"decide_{family}")
    def decide(result: dict[str, Any]) -> str:
        return f"flag_{family}" if result.get("drifted") else f"no_drift_{family}"

    @task(task_id=f"flag_{family}", outlets=[drift_asset])
    def flag(result: dict[str, Any]) -> list[str]:
        # The asset event carries what was exceeded (visible in the retrain run's triggering
        # events).
        get_current_context()["outlet_events"][drift_asset].extra = {
            "exceeded": result["exceeded"],
            "report": result.get("report"),
        }
        log.info("drift: %s", "; ".join(result["exceeded"]))
        return list(result["exceeded"])

    @task(task_id=f"no_drift_{family}")
    def no_drift(result: dict[str, Any]) -> str:
        return result.get("note") or "all drift signals below their thresholds"

    checked = check()
    decide(checked) >> [flag(checked), no_drift(checked)]  # type: ignore[arg-type]
