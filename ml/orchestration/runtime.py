"""What a task needs at run time: the project folder, its run's effective params (loaded once
per task), the in-process step call, the ledger of finished steps, credentials, the MLflow-run
cleanup on failure. Plain Python; Airflow is imported inside the functions that need a task."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.config import format_override, load_params
from ml.core.errors import ConfigError, DataValidationError, InputError

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.core.families import Family
    from ml.orchestration.settings import OrchestrationSettings
    from ml.stack.tracking import AirflowTask

log = logging.getLogger(__name__)

LEDGER_DIR = "pipeline_runs"  # under paths.reports: results of finished steps per DAG run
# Step errors that a retry cannot fix.
NOT_TRANSIENT = (ConfigError, DataValidationError, InputError)


@contextlib.contextmanager
def in_project(settings: OrchestrationSettings) -> Iterator[Path]:
    """Run inside the project folder: every path in params.yaml is relative to it."""
    before = Path.cwd()
    os.chdir(settings.project_dir)
    try:
        yield settings.project_dir
    finally:
        os.chdir(before)


def load_run_params(settings: OrchestrationSettings, overrides: dict[str, Any]) -> Params:
    """params.yaml of the project plus the run's overrides, validated."""
    with in_project(settings):
        return load_params(settings.params_file, overrides)


def step_argv(verb: list[str], params_file: str, overrides: dict[str, Any]) -> list[str]:
    """The command line equivalent of a step (logged, and run by the training container)."""
    argv = [*verb, "--params", params_file]
    for key, value in overrides.items():
        argv += ["--set", format_override(key, value)]
    return argv


class StepLedger:
    """Results of the finished steps of one DAG run, so a retried or cleared task that already
    succeeded (train: registered a version) returns its result instead of doing it again."""

    def __init__(self, root: Path, dag_id: str, run_id: str):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
        self.folder = root / LEDGER_DIR / dag_id / safe

    def get(self, step: str) -> dict[str, Any] | None:
        path = self.folder / f"{step}.json"
        if not path.is_file():
            return None
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def put(self, step: str, result: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{step}.json.tmp"
        tmp.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
        tmp.replace(self.folder / f"{step}.json")


@dataclass
class RunContext:
    """One task's view of its DAG run: the trigger-form values, the params.yaml overrides they
    make, the effective params (loaded and validated once per task) and the run's ledger."""

    settings: OrchestrationSettings
    conf: dict[str, Any]
    overrides: dict[str, Any]
    params: Params
    ledger: StepLedger | None = None

    @classmethod
    def create(
        cls,
        settings: OrchestrationSettings,
        conf: dict[str, Any],
        overrides: dict[str, Any],
        run: tuple[str, str] | None = None,
    ) -> RunContext:
        """``run``: (dag_id, run_id) for a ledger under paths.reports."""
        params = load_run_params(settings, overrides)
        ledger = StepLedger(reports_root(settings, params), *run) if run else None
        return cls(settings, conf, overrides, params, ledger)

    @property
    def reports(self) -> Path:
        return reports_root(self.settings, self.params)

    def run(self, verb: list[str]) -> dict[str, Any]:
        """``python -m ml <verb>`` in-process with this run's params (see :func:`run_ml_step`)."""
        return run_ml_step(verb, self.settings, self.params, self.overrides)

    def pending_landing_keys(self) -> list[str]:
        """Keys of the new or re-uploaded partition files in the S3 landing bucket (shop_ingest's
        sensor): the listing ``python -m ml ingest`` downloads, with the step's credentials."""
        from ml.data.s3_landing import pending_objects

        with in_project(self.settings), step_credentials(self.settings):
            return [obj.key for obj in pending_objects(self.params)]

    def record(self, step: str, result: dict[str, Any]) -> dict[str, Any]:
        if self.ledger is not None:
            self.ledger.put(step, result)
        return result


def reports_root(settings: OrchestrationSettings, params: Params) -> Path:
    """paths.reports of the effective params, as an absolute path."""
    return (settings.project_dir / params.paths.reports).resolve()


def run_ml_step(
    verb: list[str],
    settings: OrchestrationSettings,
    params: Params,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``python -m ml <verb>`` in-process, in the project folder, with params already loaded;
    the result dict comes back (JSON-able: an XCom). Inside a task, with task-log-friendly
    output and the task instance known to the MLflow runs the step creates
    (ml.orchestration.task_runtime). The equivalent command line is logged."""
    from ml.cli import run_step
    from ml.orchestration.task_runtime import airflow_step

    argv = step_argv(verb, settings.params_file, overrides or {})
    log.info("running: python -m ml %s", " ".join(argv))
    task = current_airflow_task()
    with in_project(settings), step_credentials(settings), airflow_step(task):
        try:
            return jsonable(run_step(verb, params=params))
        except NOT_TRANSIENT as exc:
            if task is None:
                raise
            # A wrong setting or bad data does not fix itself: fail now, no retry with backoff
            # (a store that does not answer, StackError, is retried).
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def jsonable(result: dict[str, Any]) -> dict[str, Any]:
    """XComs must be JSON: paths and numpy scalars become strings/numbers."""
    return dict(json.loads(json.dumps(result, default=str)))


def current_airflow_task() -> AirflowTask | None:
    """The task instance running now (dag_id, run_id, task_id, try_number); None outside a
    task."""
    from airflow.sdk import get_current_context

    from ml.stack.tracking import AirflowTask

    try:
        ti = get_current_context()["ti"]
    except Exception:  # no task context: called outside a task (tests, scripts)
        return None
    return AirflowTask(str(ti.dag_id), str(ti.run_id), str(ti.task_id), int(ti.try_number))


def step_credentials(settings: OrchestrationSettings) -> contextlib.AbstractContextManager[Any]:
    """The Airflow connection SHOPFLOW_AWS_CONN_ID applied to the environment for one step
    (nothing changes without one: the worker's environment is used as it is)."""
    from ml.stack.credentials import airflow_aws_credentials

    if not settings.aws_conn_id:
        return contextlib.nullcontext()
    return airflow_aws_credentials(settings.aws_conn_id)


def close_mlflow_runs_callback(
    spec: Family, settings: OrchestrationSettings
) -> Callable[[Any], None]:
    """``on_failure_callback`` of a task that creates MLflow runs: end the runs this try (or
    an earlier one) left RUNNING as FAILED. The step ends its own run when it can (an
    exception, SIGTERM, a timeout: ml.stack.tracking.step_run); this covers a process killed
    outright or out of memory, where Airflow runs the callback elsewhere. Never raises."""

    def callback(context: Any) -> None:
        from ml.orchestration.params import conf_overrides, retrain_fields
        from ml.stack.tracking import AirflowTask, close_task_runs

        ti = context["ti"]
        task = AirflowTask(str(ti.dag_id), str(ti.run_id), str(ti.task_id), int(ti.try_number))
        error = context.get("exception")
        reason = f"the Airflow task failed: {error!r}"[:500] if error else "the Airflow task failed"
        try:
            conf = dict(context.get("params") or {})
            overrides = conf_overrides(retrain_fields(spec), conf, settings.project_dir)
            params = load_run_params(settings, overrides)
            with in_project(settings):
                close_task_runs(params.mlflow, spec.experiment(params), task, reason=reason)
        except Exception as exc:
            log.warning(
                "could not close the MLflow runs of %s try %s: %s", ti.task_id, ti.try_number, exc
            )

    return callback
