"""Airflow wiring for the retrain pipelines, written once for both model families.

The DAG files in ``dags/`` are two lines each: ``build_retrain_dag("intent")``. Every task is a
few lines calling :func:`ml.cli.run_step`, the same entry point as ``python -m ml`` and the DVC
stages ("one library, two callers"); nothing here knows how a model is trained.

DAGs and how they start each other (data-aware scheduling, no loops)::

    shop_ingest (daily)        ingest -> validate --outlets--> shopflow://validated/<dataset>
    drift_monitor (daily, or   check_<family> -> decide_<family> -> flag_<family>
      on validated data)         --outlet--> shopflow://drift/<family> | no_drift_<family>
    <family>_retrain (weekly,  preflight -> ingest -> validate [-> pull_data] -> preprocess
      or on the drift asset)     -> train [-> push_data] -> evaluate -> gate -> decide
                                 -> promote | reject -> summary

pull_data / push_data exist in dvc preprocess mode (ml.data_versions), and record_dvc_lock after
evaluate (dvc.lock records train/evaluate unless the run overrode their params); with
SHOPFLOW_TRAIN_RUNNER=docker|kubernetes, train is train_command -> train (container or pod) ->
record_training (ml.containers).

A retrain DAG's own validate emits no asset (it would re-trigger the monitor, which would
re-trigger it after a rejected challenger). Each registered version is tagged with the dates it
was trained on, so the monitor compares new data with the champion's, not just yesterday's.

Orchestration settings that are not model settings (schedule, pools, queue, retries) come from
``SHOPFLOW_*`` environment variables with sensible defaults, so a deployment can change them
without touching params.yaml (whose schema is owned by ``ml.config``).

Airflow is imported inside the factory functions only: the helpers (overrides, ledger, summary)
are plain Python and unit-testable without a scheduler.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml import containers
from ml.core.families import FAMILIES, Family, get_family
from ml.errors import ConfigError, InputError

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from ml.tracking import AirflowTask

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
# A fixed past start: with catchup=False only the next scheduled interval runs.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
LEDGER_DIR = "pipeline_runs"  # under paths.reports: results of finished steps per DAG run


class OrchestrationSettings(BaseModel):
    """Deployment knobs of the DAGs, read from ``SHOPFLOW_*`` environment variables."""

    model_config = ConfigDict(extra="forbid")

    project_dir: Path = REPO_ROOT
    params_file: str = "params.yaml"
    # Defaults of params.yaml `schedules` (weekly retrains, Monday 03:00/04:00 UTC; a drift
    # asset event also starts one); from_env() reads the project's params.yaml.
    intent_schedule: str = "0 3 * * 1"
    recommender_schedule: str = "0 4 * * 1"
    ingest_schedule: str = "0 2 * * *"
    drift_schedule: str = "0 6 * * *"
    # Ingest, validate and preprocess share one workspace (and DVC's repo lock): one at a time.
    data_pool: str = "dvc"
    # Training goes to this pool/queue when set (e.g. a `gpu` pool of GPU-worker slots).
    train_pool: str | None = None
    train_queue: str | None = None
    # step: call the preprocess step directly; dvc: `dvc repro --single-item <stage>` (records
    # the outputs in dvc.lock and the DVC cache, needs an initialised DVC repo).
    preprocess_mode: str = Field("step", pattern="^(step|dvc)$")
    # dvc mode only (ml.data_versions): pull the preprocess stage's recorded data from the DVC
    # remote before preprocessing, push it after training and tag the new model version with
    # it. auto: when a remote is configured; required: fail without one; off: never.
    dvc_sync: Literal["auto", "required", "off"] = "auto"
    # The DVC remote to sync with; unset = DVC's default remote (`dvc remote default`).
    dvc_remote: str | None = None
    # Airflow connection (type aws: login = access key id, password = secret, extra
    # endpoint_url / region_name) applied to each step's environment (ml.credentials); unset =
    # the worker's own environment (AWS_*, MLFLOW_S3_ENDPOINT_URL).
    aws_conn_id: str | None = None
    retries: int = Field(2, ge=0)
    retry_delay_s: float = Field(60.0, ge=0)
    max_retry_delay_s: float = Field(1800.0, ge=0)
    mlflow_ui_url: str = "http://127.0.0.1:5000"

    # Where the `train` task trains (ml.containers): local = inside the Airflow worker;
    # docker = a container from trainer_image (DockerOperator); kubernetes = a pod
    # (KubernetesPodOperator). The containers run the same `python -m ml train` command.
    train_runner: Literal["local", "docker", "kubernetes"] = "local"
    # Built from docker/trainer.Dockerfile (compose: the `trainer` service's image).
    trainer_image: str = "shopflow-trainer:latest"
    # GPUs the container or pod asks for; 0 = CPU only (the local runner ignores it).
    train_gpus: int = Field(1, ge=0)
    # The project folder inside the container: the trainer image's WORKDIR, where the shared
    # project folder is mounted and the command runs.
    trainer_project_dir: str = "/opt/shopflow"
    # Docker engine; unset = DOCKER_HOST or the local socket.
    docker_url: str | None = None
    # Comma-separated SOURCE:TARGET mounts of the shared project folder (SOURCE a host path or
    # a volume name); unset = project_dir bind-mounted at trainer_project_dir, right when the
    # worker runs on the Docker host. Give the host path when the worker's folder is itself a
    # mount of one, or the named volumes when the workspace lives in volumes (compose).
    docker_mounts: list[str] = Field(default_factory=list)
    # Network the container joins, e.g. compose's `shopflow_default` to reach mlflow/minio.
    docker_network: str | None = None
    # user[:group] the container runs as (e.g. the workers' 50000:0, so that files it writes to
    # the shared folder stay writable for them); unset = the image's user.
    docker_user: str | None = None
    k8s_namespace: str = "default"
    # ReadWriteMany claim holding the project folder, mounted at trainer_project_dir (the
    # Airflow workers must see the same folder at project_dir).
    k8s_project_pvc: str = "shopflow-project"
    # Kubernetes Secret whose keys become the pod's environment (AWS_*, MLFLOW_TRACKING_*).
    k8s_secret: str | None = None
    k8s_service_account: str | None = None
    # Where a GPU pod may run (only applied when train_gpus > 0): node labels `key=value,...`
    # and tolerated taints `key[=value][:Effect],...` (e.g. nvidia.com/gpu:NoSchedule).
    k8s_gpu_node_selector: dict[str, str] = Field(default_factory=dict)
    k8s_gpu_tolerations: list[str] = Field(default_factory=list)
    # Pulling a CUDA image onto a freshly scaled-up GPU node takes minutes.
    k8s_startup_timeout_s: int = Field(600, ge=1)

    @field_validator("docker_mounts", "k8s_gpu_tolerations", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return containers.split_list(value)

    @field_validator("docker_mounts")
    @classmethod
    def _valid_mounts(cls, value: list[str]) -> list[str]:
        for entry in value:
            containers.DockerMount.parse(entry)
        return value

    @field_validator("k8s_gpu_tolerations")
    @classmethod
    def _valid_tolerations(cls, value: list[str]) -> list[str]:
        for entry in value:
            containers.parse_toleration(entry)
        return value

    @field_validator("k8s_gpu_node_selector", mode="before")
    @classmethod
    def _node_selector(cls, value: Any) -> Any:
        return containers.parse_node_selector(value)

    @field_validator("trainer_project_dir")
    @classmethod
    def _absolute_container_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} is not an absolute path")
        return value

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OrchestrationSettings:
        env = os.environ if environ is None else environ
        values = {
            name: env[f"SHOPFLOW_{name.upper()}"]
            for name in cls.model_fields
            if env.get(f"SHOPFLOW_{name.upper()}") not in (None, "")
        }
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"SHOPFLOW_{str(err['loc'][0]).upper()}={err.get('input')!r}: {err['msg']}"
                if err["loc"]
                else err["msg"]
                for err in exc.errors()
            )
            raise ConfigError(
                f"SHOPFLOW_* environment settings are invalid: {problems} (fix or unset them)"
            ) from exc
        # Schedules come from params.yaml (the one configuration source) unless the
        # environment sets them.
        from ml.config import load_params

        schedules = load_params(settings.project_dir / settings.params_file).schedules
        updates = {
            f"{name}_schedule": cron
            for name, cron in schedules.model_dump().items()
            if f"{name}_schedule" not in values
        }
        return settings.model_copy(update=updates)

    def schedule_for(self, family: str) -> str:
        return str(getattr(self, f"{family}_schedule"))


# --------------------------------------------------------------------------- run-time helpers


@contextlib.contextmanager
def in_project(settings: OrchestrationSettings) -> Iterator[Path]:
    """Run inside the project folder: every path in params.yaml is relative to it."""
    before = Path.cwd()
    os.chdir(settings.project_dir)
    try:
        yield settings.project_dir
    finally:
        os.chdir(before)


OVERRIDE_PATTERN = r"^(@.+|[A-Za-z_][\w.@-]*=.*)$"
_OVERRIDE = re.compile(OVERRIDE_PATTERN)


def conf_overrides(spec: Family, conf: dict[str, Any]) -> list[str]:
    """Turn the run's Params (the UI trigger form) into ``--set`` overrides for every step."""
    out: list[str] = []
    if conf.get("epochs") is not None:
        out.append(f"{spec.epochs_key}={int(conf['epochs'])}")
    if conf.get("learning_rate") is not None:
        out.append(f"{spec.learning_rate_key}={float(conf['learning_rate'])}")
    if conf.get("sample_size") is not None:
        out.append(f"{spec.sample_key}={int(conf['sample_size'])}")
    return out + checked_overrides(conf.get("overrides") or [])


def checked_overrides(entries: list[str]) -> list[str]:
    """Free-form run overrides, refused early when not ``section.key=value`` or ``@file``."""
    for entry in entries:
        if not _OVERRIDE.match(entry):
            raise ConfigError(f"run override {entry!r} is not of the form section.key=value")
    return list(entries)


def step_argv(verb: list[str], settings: OrchestrationSettings, overrides: list[str]) -> list[str]:
    argv = [*verb, "--params", settings.params_file]
    for entry in overrides:
        argv += ["--set", entry]
    return argv


def run_ml_step(
    verb: list[str], settings: OrchestrationSettings, overrides: list[str]
) -> dict[str, Any]:
    """``python -m ml <verb>`` in-process, in the project folder; the result dict comes back.
    Inside a task, with task-log-friendly output and the task instance known to the MLflow runs
    the step creates (ml.task_runtime)."""
    from ml.cli import run_step
    from ml.task_runtime import airflow_step

    argv = step_argv(verb, settings, overrides)
    log.info("running: python -m ml %s", " ".join(argv))
    with in_project(settings), step_credentials(settings), airflow_step(current_airflow_task()):
        return run_step(argv)


def current_airflow_task() -> AirflowTask | None:
    """The task instance running now (dag_id, run_id, task_id, try_number); None outside a
    task."""
    from airflow.sdk import get_current_context

    from ml.tracking import AirflowTask

    try:
        ti = get_current_context()["ti"]
    except Exception:  # no task context: called outside a task (tests, scripts)
        return None
    return AirflowTask(str(ti.dag_id), str(ti.run_id), str(ti.task_id), int(ti.try_number))


def close_mlflow_runs_callback(
    spec: Family, settings: OrchestrationSettings
) -> Callable[[Any], None]:
    """``on_failure_callback`` of a task that creates MLflow runs: end the runs this try (or
    an earlier one) left RUNNING as FAILED. The step ends its own run when it can (an
    exception, SIGTERM, a timeout: ml.tracking.step_run); this covers a process killed outright
    or out of memory, where Airflow runs the callback elsewhere. Never raises."""

    def callback(context: Any) -> None:
        from ml.config import load_params
        from ml.tracking import AirflowTask, close_task_runs

        ti = context["ti"]
        task = AirflowTask(str(ti.dag_id), str(ti.run_id), str(ti.task_id), int(ti.try_number))
        error = context.get("exception")
        reason = f"the Airflow task failed: {error!r}"[:500] if error else "the Airflow task failed"
        try:
            overrides = conf_overrides(spec, dict(context.get("params") or {}))
            with in_project(settings):
                params = load_params(settings.params_file, overrides)
                close_task_runs(params.mlflow, spec.experiment(params), task, reason=reason)
        except Exception as exc:
            log.warning(
                "could not close the MLflow runs of %s try %s: %s", ti.task_id, ti.try_number, exc
            )

    return callback


def step_credentials(settings: OrchestrationSettings) -> contextlib.AbstractContextManager[Any]:
    """The Airflow connection SHOPFLOW_AWS_CONN_ID applied to the environment for one step
    (nothing changes without one: the worker's environment is used as it is)."""
    from ml.credentials import airflow_aws_credentials

    if not settings.aws_conn_id:
        return contextlib.nullcontext()
    return airflow_aws_credentials(settings.aws_conn_id)


def preflight_argv(settings: OrchestrationSettings) -> list[str]:
    """``preflight`` for what a retrain run uses: the tracking and artifact stores, and the
    DVC remote when the run syncs data with it."""
    argv = ["preflight", "--check", "mlflow", "--check", "artifacts"]
    if syncs_data(settings):
        argv += ["--check", "dvc"]
        if settings.dvc_remote:
            argv += ["--dvc-remote", settings.dvc_remote]
    return argv


def run_dvc_stage(stage: str, settings: OrchestrationSettings) -> dict[str, Any]:
    """``dvc repro --single-item <stage>``: DVC runs the same ``python -m ml`` command and
    records its outputs. Overrides cannot be passed this way (DVC reads params.yaml only)."""
    from ml.data_versions import run_dvc

    proc = run_dvc(settings.project_dir, "repro", "--single-item", stage)
    log.info("dvc repro %s:\n%s", stage, proc.stdout[-4000:])
    if proc.returncode != 0:
        raise ConfigError(
            f"dvc repro --single-item {stage} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout)[-2000:]}"
        )
    return {"stage": stage, "mode": "dvc"}


def reports_dir(settings: OrchestrationSettings, overrides: list[str]) -> Path:
    """paths.reports of the effective params, as an absolute path."""
    from ml.config import load_params

    with in_project(settings):
        params = load_params(settings.params_file, overrides)
    return (settings.project_dir / params.paths.reports).resolve()


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


def jsonable(result: dict[str, Any]) -> dict[str, Any]:
    """XComs must be JSON: paths and numpy scalars become strings/numbers."""
    return dict(json.loads(json.dumps(result, default=str)))


def train_once(
    spec: Family,
    settings: OrchestrationSettings,
    overrides: list[str],
    ledger: StepLedger,
) -> dict[str, Any]:
    """Train and register once per DAG run: a retry after success reuses the registration."""
    done = ledger.get("train")
    if done is not None:
        log.info("train already finished in this DAG run; reusing %s", done.get("registration"))
        return done | {"reused": True}
    result = jsonable(run_ml_step(["train", spec.name], settings, overrides))
    result["trained_on"] = tag_trained_on(spec, settings, overrides, result)
    ledger.put("train", result)
    return result | {"reused": False}


def container_train_args(
    spec: Family,
    settings: OrchestrationSettings,
    overrides: list[str],
    ledger: StepLedger,
) -> list[str]:
    """The arguments after ``python -m ml`` for the training container: the same step, params
    and overrides as in-process training, plus ``--output-json`` into the shared project folder
    (container paths: the folder is mounted at ``settings.trainer_project_dir``)."""
    from airflow.sdk.exceptions import AirflowSkipException

    done = ledger.get("train")
    if done is not None:
        # Trained and registered earlier in this DAG run (cleared and run again): no second
        # version; record_training hands the earlier result on.
        raise AirflowSkipException(
            f"train already finished in this DAG run: reusing {done.get('registration')}"
        )
    output = containers.result_file(ledger.folder)
    inside = containers.container_path(output, settings, "the training result file")
    ledger.folder.mkdir(parents=True, exist_ok=True)
    # A result left by an earlier attempt must not pass for this one's.
    output.unlink(missing_ok=True)
    params_file = settings.params_file
    if Path(params_file).is_absolute():
        params_file = str(containers.container_path(Path(params_file), settings, "params file"))
    argv = step_argv(
        ["train", spec.name], settings.model_copy(update={"params_file": params_file}), overrides
    )
    argv += ["--output-json", str(inside)]
    log.info("the container runs: %s", " ".join(containers.trainer_argv(argv)))
    return argv


def record_container_training(
    spec: Family,
    settings: OrchestrationSettings,
    overrides: list[str],
    ledger: StepLedger,
) -> dict[str, Any]:
    """After the container: what :func:`train_once` returns in-process (the step's result,
    ``trained_on`` tagged on the new version, in the ledger under ``train``)."""
    output = containers.result_file(ledger.folder)
    if output.is_file():
        result = jsonable(json.loads(output.read_text(encoding="utf-8")))
        result["trained_on"] = tag_trained_on(spec, settings, overrides, result)
        ledger.put("train", result)
        output.unlink()  # consumed: the ledger has it now
        return result | {"reused": False}
    done = ledger.get("train")
    if done is not None:
        log.info("train already finished in this DAG run; reusing %s", done.get("registration"))
        return done | {"reused": True}
    raise InputError(
        f"the training container left no result at {output}: the project folder must be shared "
        f"storage mounted at SHOPFLOW_TRAINER_PROJECT_DIR ({settings.trainer_project_dir}) in "
        "the container (SHOPFLOW_DOCKER_MOUNTS for docker, SHOPFLOW_K8S_PROJECT_PVC for "
        "kubernetes)"
    )


def syncs_data(settings: OrchestrationSettings) -> bool:
    """Whether the retrain DAGs pull/push data versions (dvc preprocess mode, sync not off)."""
    return settings.preprocess_mode == "dvc" and settings.dvc_sync != "off"


def pull_data_version(spec: Family, settings: OrchestrationSettings) -> dict[str, Any]:
    """Before preprocessing: the stage's recorded outputs from the DVC remote (a fresh worker
    gets the last version back, so an unchanged stage is skipped instead of recomputed)."""
    from ml.data_versions import pull_stage, resolve_remote

    project = settings.project_dir
    if resolve_remote(project, settings.dvc_remote) is None:
        return no_remote(settings, "pull")
    with step_credentials(settings):
        return pull_stage(project, spec.dvc_preprocess_stage, settings.dvc_remote)


def push_data_version(
    spec: Family, settings: OrchestrationSettings, overrides: list[str], train: dict
) -> dict[str, Any]:
    """After training: push the data the new version learnt from and tag the version with the
    stage's dvc.lock entry (``python -m ml restore-data <family> --version N`` pulls it back)."""
    from ml import registry
    from ml.config import load_params
    from ml.data_versions import DATA_VERSION_TAG, push_stage, resolve_remote

    project = settings.project_dir
    if resolve_remote(project, settings.dvc_remote) is None:
        return no_remote(settings, "push")
    with step_credentials(settings):
        result = push_stage(project, spec.dvc_preprocess_stage, settings.dvc_remote)
    reg = train.get("registration") or {}
    if reg.get("version"):
        with in_project(settings):
            client = registry.get_client(load_params(settings.params_file, overrides))
            client.set_model_version_tag(
                reg["model_name"], str(reg["version"]), DATA_VERSION_TAG, json.dumps(result["lock"])
            )
        log.info("%s v%s tagged with its data version", reg["model_name"], reg["version"])
    outs = {o["path"]: o.get("md5") for o in result["lock"].get("outs", [])}
    return {"stage": result["stage"], "remote": result["remote"], "outs": outs}


def record_dvc_results(
    spec: Family, settings: OrchestrationSettings, overrides: list[str]
) -> dict[str, Any]:
    """After train and evaluate (dvc mode): record their DVC stages in dvc.lock, so `dvc repro`
    agrees they are up to date; not when the run's overrides changed a param they declare."""
    from ml.data_versions import record_stages

    stages = [spec.dvc_train_stage, spec.dvc_evaluate_stage]
    return record_stages(settings.project_dir, stages, settings.params_file, overrides)


def no_remote(settings: OrchestrationSettings, action: str) -> dict[str, Any]:
    """dvc_sync=auto without a remote: say so and go on; required: stop with the settings."""
    if settings.dvc_sync == "required":
        raise ConfigError(
            f"SHOPFLOW_DVC_SYNC=required but {settings.project_dir} has no DVC remote to "
            f"{action}: `dvc remote add --local --default <name> s3://bucket/path` there, or set "
            "SHOPFLOW_DVC_REMOTE"
        )
    log.warning("no DVC remote configured: data versions stay in the local DVC cache only")
    return {"remote": None, "skipped": f"no DVC remote to {action}"}


def tag_trained_on(
    spec: Family, settings: OrchestrationSettings, overrides: list[str], result: dict
) -> dict[str, list[str]]:
    """Tag the new version with the validated partition dates it learnt from: the drift
    monitor's reference for this model once it is champion."""
    from ml import registry
    from ml.config import load_params
    from ml.drift import dated_partitions
    from ml.registry import TRAINED_ON_TAG

    with in_project(settings):
        params = load_params(settings.params_file, overrides)
        dates = {ds: sorted(dated_partitions(params.paths.validated, ds)) for ds in spec.datasets}
        reg = result.get("registration") or {}
        if reg.get("version"):
            client = registry.get_client(params)
            client.set_model_version_tag(
                reg["model_name"], str(reg["version"]), TRAINED_ON_TAG, json.dumps(dates)
            )
    return dates


def choose_branch(gate: dict[str, Any], conf: dict[str, Any]) -> str:
    """Task id to follow after the gate: ``promote`` or ``reject``.

    dry_run wins over everything (nothing changes in the registry); force_promote overrides a
    negative gate decision (recorded as forced in the promotion history).
    """
    if conf.get("dry_run"):
        return "reject"
    if conf.get("force_promote") or gate.get("promote"):
        return "promote"
    return "reject"


def mlflow_run_link(
    settings: OrchestrationSettings, overrides: list[str], run_id: str | None
) -> str | None:
    """The run's page in the MLflow UI (``settings.mlflow_ui_url``), None if unknown."""
    if not run_id:
        return None
    import mlflow

    from ml.config import load_params
    from ml.tracking import resolve_tracking_uri

    with in_project(settings):
        params = load_params(settings.params_file, overrides)
        uri, _ = resolve_tracking_uri(params.mlflow)
        try:
            experiment = mlflow.MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
        except Exception as exc:  # a link is a convenience: never fail the summary for it
            log.warning("cannot look up MLflow run %s: %s", run_id, exc)
            return None
    return f"{settings.mlflow_ui_url.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def read_metrics(settings: OrchestrationSettings, family: str, overrides: list[str]) -> dict:
    path = reports_dir(settings, overrides) / family / "metrics.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    # Keep the XCom small: top-level numbers, and the model's own (recommender: under "model").
    flat = {k: v for k, v in data.items() if isinstance(v, int | float)}
    model = data.get("model")
    if isinstance(model, dict):
        flat.update({k: v for k, v in model.items() if isinstance(v, int | float)})
    return flat


def build_summary(
    spec: Family,
    *,
    train: dict[str, Any],
    gate: dict[str, Any],
    metrics: dict[str, Any],
    outcome: dict[str, Any] | None,
    conf: dict[str, Any],
    link: str | None = None,
    data_version: dict[str, Any] | None = None,
) -> dict[str, Any]:
    registration = train.get("registration") or {}
    run_id = registration.get("run_id")
    promoted = bool(outcome and outcome.get("action") == "promote")
    return {
        "family": spec.name,
        "model": registration.get("model_name"),
        "version": registration.get("version"),
        "decision": gate.get("decision"),
        "gate_promote": gate.get("promote"),
        "reasons": gate.get("reasons", []),
        "promoted": promoted,
        "forced": bool(conf.get("force_promote")) and promoted and not gate.get("promote"),
        "dry_run": bool(conf.get("dry_run")),
        "metrics": metrics,
        "mlflow_run_id": run_id,
        "mlflow_run_link": link,
        "train_reused": train.get("reused", False),
        # push_data's result in dvc mode: the remote and the hashes of the data it learnt from.
        "data_version": data_version,
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['family']}: {summary['model']} v{summary['version']} -> "
        f"gate {summary['decision']}, "
        + ("PROMOTED to champion" if summary["promoted"] else "not promoted")
        + (" (forced)" if summary["forced"] else "")
        + (" (dry run)" if summary["dry_run"] else ""),
        f"  MLflow run: {summary['mlflow_run_link']}",
    ]
    data = summary.get("data_version") or {}
    if data.get("outs"):
        where = f"DVC remote {data['remote']}" if data.get("remote") else "the local DVC cache"
        for path, md5 in data["outs"].items():
            lines.append(f"  data: {path} ({md5}) in {where}")
    lines += [f"  {k} = {v:.4f}" for k, v in sorted(summary["metrics"].items())]
    lines += [f"  reason: {r}" for r in summary["reasons"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- DAG factories


def validated_asset_uri(dataset: str) -> str:
    """New validated data of one dataset: emitted by shop_ingest, listened to by drift_monitor."""
    return f"shopflow://validated/{dataset}"


def drift_asset_uri(family: str) -> str:
    """Drift found for one family: emitted by drift_monitor, starts the family's retraining."""
    return f"shopflow://drift/{family}"


def retrain_params() -> dict[str, Any]:
    """Trigger-form Params; the JSON schemas make the UI (and the API) refuse bad values."""
    from airflow.sdk import Param

    return {
        "epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=100,
            description="training epochs (empty = params.yaml)",
        ),
        "learning_rate": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=0.1,
            description="learning rate (empty = params.yaml)",
        ),
        "sample_size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="cap on training examples (empty = all)",
        ),
        "first_day": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="synthetic ingest: first day index (empty = generator defaults)",
        ),
        "days": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=365,
            description="synthetic ingest: number of days",
        ),
        "force_promote": Param(
            False, type="boolean", description="promote even if the gate says no"
        ),
        "dry_run": Param(
            False, type="boolean", description="train, evaluate and gate, but never promote"
        ),
        "overrides": Param(
            [],
            type="array",
            items={"type": "string", "pattern": OVERRIDE_PATTERN},
            description="extra params.yaml overrides, e.g. intent.train.batch_size=16",
        ),
    }


def _retry_args(settings: OrchestrationSettings) -> dict[str, Any]:
    return {
        "retries": settings.retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_s),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=settings.max_retry_delay_s),
    }


def _schedule(family: str, settings: OrchestrationSettings) -> Any:
    """Weekly cron, or as soon as the drift monitor flags this family.

    Not on the validated-data assets themselves: the retrain DAG validates too, and a DAG
    triggered by its own outlets would loop."""
    from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

    return AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.schedule_for(family), timezone="UTC"),
        assets=[Asset(drift_asset_uri(family))],
    )


def build_retrain_dag(family: str, settings: OrchestrationSettings | None = None) -> DAG:
    """ingest -> validate -> preprocess -> train -> evaluate -> gate -> promote | reject -> summary
    (one DAG per family, same wiring)."""
    from airflow.sdk import dag, get_current_context, task

    spec = get_family(family)
    settings = settings or OrchestrationSettings.from_env()
    train_opts: dict[str, Any] = _retry_args(settings)
    if settings.train_pool:
        train_opts["pool"] = settings.train_pool
    if settings.train_queue:
        train_opts["queue"] = settings.train_queue

    def _ctx() -> tuple[dict[str, Any], list[str], StepLedger]:
        context = get_current_context()
        conf = dict(context["params"])
        overrides = conf_overrides(spec, conf)
        ledger = StepLedger(reports_dir(settings, overrides), spec.dag_id, str(context["run_id"]))
        return conf, overrides, ledger

    @dag(
        dag_id=spec.dag_id,
        schedule=_schedule(family, settings),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        params=retrain_params(),
        default_args={"owner": "shopflow", "retries": 0},
        tags=["shopflow", "retrain", family],
        doc_md=__doc__,
        render_template_as_native_obj=True,
    )
    def retrain() -> None:
        # Fail in seconds, naming the setting to fix, when a store or its credentials are not
        # usable: before any data moves or an hour of training is spent.
        @task(**_retry_args(settings))
        def preflight() -> dict[str, Any]:
            _, overrides, _ = _ctx()
            return jsonable(run_ml_step(preflight_argv(settings), settings, overrides))

        @task(pool=settings.data_pool)
        def ingest() -> dict[str, Any]:
            conf, overrides, ledger = _ctx()
            result = jsonable(run_ml_step(ingest_verb(conf), settings, overrides))
            ledger.put("ingest", result)
            return result

        # A DataValidationError fails this task (no retry: the data will not get better) with
        # the validation message; everything downstream is then upstream_failed.
        @task(pool=settings.data_pool)
        def validate() -> dict[str, Any]:
            _, overrides, ledger = _ctx()
            result = {
                ds: jsonable(run_ml_step(["validate", "--dataset", ds], settings, overrides))
                for ds in spec.datasets
            }
            ledger.put("validate", result)
            return result

        @task(pool=settings.data_pool)
        def preprocess() -> dict[str, Any]:
            _, overrides, _ = _ctx()
            if settings.preprocess_mode == "dvc":
                return run_dvc_stage(spec.dvc_preprocess_stage, settings)
            return jsonable(run_ml_step(["preprocess", spec.preprocess], settings, overrides))

        @task(pool=settings.data_pool, **_retry_args(settings))
        def pull_data() -> dict[str, Any]:
            return pull_data_version(spec, settings)

        @task(pool=settings.data_pool, **_retry_args(settings))
        def push_data(train_result: dict[str, Any]) -> dict[str, Any]:
            _, overrides, _ = _ctx()
            return push_data_version(spec, settings, overrides, train_result)

        @task(pool=settings.data_pool, **_retry_args(settings))
        def record_dvc_lock() -> dict[str, Any]:
            _, overrides, _ = _ctx()
            return record_dvc_results(spec, settings, overrides)

        @task(on_failure_callback=close_mlflow_runs_callback(spec, settings), **train_opts)
        def train() -> dict[str, Any]:
            _, overrides, ledger = _ctx()
            return train_once(spec, settings, overrides, ledger)

        @task(**_retry_args(settings))
        def evaluate() -> dict[str, Any]:
            _, overrides, ledger = _ctx()
            result = jsonable(run_ml_step(["evaluate", spec.name], settings, overrides))
            ledger.put("evaluate", result)
            return result

        @task
        def gate() -> dict[str, Any]:
            _, overrides, ledger = _ctx()
            done = ledger.get("gate")  # the gate tags the version: decide once per run
            if done is not None:
                return done
            result = jsonable(run_ml_step(["gate", spec.name], settings, overrides))
            ledger.put("gate", result)
            return result

        @task.branch
        def decide(gate_result: dict[str, Any]) -> str:
            conf = dict(get_current_context()["params"])
            return choose_branch(gate_result, conf)

        @task
        def promote(gate_result: dict[str, Any]) -> dict[str, Any]:
            _, overrides, _ = _ctx()
            context = get_current_context()
            verb = ["registry", "promote", spec.name, "--pipeline-run", str(context["run_id"])]
            forced = not gate_result.get("promote")
            if forced:
                verb += ["--force", "--reason", "force_promote from the DAG run's Params"]
            # registry.promote is a no-op when the version is already champion (retry-safe).
            result = jsonable(run_ml_step(verb, settings, overrides))
            return {"action": "promote", "forced": forced, **result}

        @task
        def reject(gate_result: dict[str, Any]) -> dict[str, Any]:
            conf = dict(get_current_context()["params"])
            why = "dry run" if conf.get("dry_run") else "; ".join(gate_result.get("reasons", []))
            log.info("challenger not promoted: %s", why)
            return {"action": "reject", "why": why}

        @task(trigger_rule="none_failed_min_one_success")
        def summary(train_result: dict[str, Any], gate_result: dict[str, Any]) -> dict[str, Any]:
            conf, overrides, ledger = _ctx()
            ti = get_current_context()["ti"]
            outcome = ti.xcom_pull(task_ids="promote") or ti.xcom_pull(task_ids="reject")
            data_version = ti.xcom_pull(task_ids="push_data") if syncs_data(settings) else None
            result = build_summary(
                spec,
                train=train_result,
                gate=gate_result,
                metrics=read_metrics(settings, spec.name, overrides),
                outcome=outcome,
                conf=conf,
                link=mlflow_run_link(
                    settings, overrides, (train_result.get("registration") or {}).get("run_id")
                ),
                data_version=data_version,
            )
            log.info("retrain summary\n%s", format_summary(result))
            ledger.put("summary", result)  # also a file: the demo and tests read it
            return result

        t_ingest, t_validate, t_pre = ingest(), validate(), preprocess()
        preflight() >> t_ingest
        if settings.train_runner == "local":
            train_start = t_train = train()
        else:  # train_command -> train (container or pod) -> record_training
            train_start, t_train = _container_training_tasks(spec, settings, train_opts, _ctx)
        t_eval = evaluate()
        t_gate = gate()
        if syncs_data(settings):
            # ... -> validate -> pull_data -> preprocess -> train -> push_data -> evaluate -> ...
            t_pull, t_push = pull_data(), push_data(t_train)  # type: ignore[arg-type]
            t_ingest >> t_validate >> t_pull >> t_pre >> train_start
            t_train >> t_push >> t_eval >> t_gate
        else:
            t_ingest >> t_validate >> t_pre >> train_start
            t_train >> t_eval >> t_gate
        if settings.preprocess_mode == "dvc":
            # dvc.lock records the train and evaluate steps this run did (as `dvc repro` would).
            t_eval >> record_dvc_lock()
        # TaskFlow passes XComArgs where the functions declare the values they receive.
        branch = decide(t_gate)  # type: ignore[arg-type]
        t_promote, t_reject = promote(t_gate), reject(t_gate)  # type: ignore[arg-type]
        branch >> [t_promote, t_reject]
        t_summary = summary(t_train, t_gate)  # type: ignore[arg-type]
        [t_promote, t_reject] >> t_summary

    return retrain()


def _container_training_tasks(
    spec: Family,
    settings: OrchestrationSettings,
    train_opts: dict[str, Any],
    run_context: Callable[[], tuple[dict[str, Any], list[str], StepLedger]],
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
        _, overrides, ledger = run_context()
        return container_train_args(spec, settings, overrides, ledger)

    # none_failed: also after a skipped train (already trained in this DAG run).
    @task(trigger_rule="none_failed", **_retry_args(settings))
    def record_training() -> dict[str, Any]:
        _, overrides, ledger = run_context()
        return record_container_training(spec, settings, overrides, ledger)

    t_command = train_command()
    t_container = containers.train_operator(
        settings, spec.name, t_command, task_id="train", **train_opts
    )
    t_record = record_training()
    t_command >> t_container >> t_record
    return t_command, t_record


def build_shop_ingest_dag(settings: OrchestrationSettings | None = None) -> DAG:
    """Daily: bring new shop data in and validate it; accepted data updates the validated-data
    assets (which start the drift monitor)."""
    from airflow.sdk import Asset, dag, get_current_context, task

    settings = settings or OrchestrationSettings.from_env()
    datasets = sorted({d for spec in FAMILIES.values() for d in spec.datasets})

    @dag(
        dag_id="shop_ingest",
        schedule=settings.ingest_schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        params={
            "first_day": retrain_params()["first_day"],
            "days": retrain_params()["days"],
            "overrides": _overrides_param(),
        },
        default_args={"owner": "shopflow", "retries": 0},
        tags=["shopflow", "data"],
        doc_md=build_shop_ingest_dag.__doc__,
    )
    def shop_ingest() -> None:
        @task(pool=settings.data_pool)
        def ingest() -> dict[str, Any]:
            conf = dict(get_current_context()["params"])
            return jsonable(run_ml_step(ingest_verb(conf), settings, _run_overrides()))

        @task(pool=settings.data_pool, outlets=[Asset(validated_asset_uri(d)) for d in datasets])
        def validate() -> dict[str, Any]:
            return jsonable(run_ml_step(["validate"], settings, _run_overrides()))

        ingest() >> validate()

    return shop_ingest()


def _overrides_param() -> Any:
    from airflow.sdk import Param

    return Param(
        [],
        type="array",
        items={"type": "string", "pattern": OVERRIDE_PATTERN},
        description="params.yaml overrides, e.g. generator.days=1",
    )


def _run_overrides() -> list[str]:
    from airflow.sdk import get_current_context

    return checked_overrides(list(get_current_context()["params"].get("overrides") or []))


def ingest_verb(conf: dict[str, Any]) -> list[str]:
    """``ingest`` with the run's synthetic day range, if given."""
    verb = ["ingest"]
    if conf.get("first_day") is not None:
        verb += ["--first-day", str(int(conf["first_day"]))]
    if conf.get("days") is not None:
        verb += ["--days", str(int(conf["days"]))]
    return verb


def drift_argv(family: str, conf: dict[str, Any]) -> list[str]:
    """``drift <family>`` options from the drift monitor's Params."""
    argv = ["drift", family, "--sample", str(int(conf.get("sample") or 500))]
    if conf.get("model_path"):
        argv += ["--model-path", str(conf["model_path"])]
    for entry in conf.get("thresholds") or []:
        argv += ["--threshold", entry]
    return argv


def build_drift_monitor_dag(settings: OrchestrationSettings | None = None) -> DAG:
    """Per family: drift check -> branch -> flag the family's drift asset (which starts its
    retrain DAG) or do nothing. Runs daily and whenever new data is validated."""
    from airflow.sdk import (
        Asset,
        AssetAny,
        AssetOrTimeSchedule,
        CronTriggerTimetable,
        Param,
        dag,
        get_current_context,
        task,
    )

    settings = settings or OrchestrationSettings.from_env()
    datasets = sorted({d for spec in FAMILIES.values() for d in spec.datasets})

    @dag(
        dag_id="drift_monitor",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(settings.drift_schedule, timezone="UTC"),
            assets=AssetAny(*(Asset(validated_asset_uri(d)) for d in datasets)),
        ),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        params={
            "model_path": Param(
                None,
                type=["null", "string"],
                description="local HF folder for utterance embeddings (empty = MiniLM)",
            ),
            "sample": Param(500, type="integer", minimum=10, maximum=20000),
            "thresholds": Param(
                [],
                type="array",
                items={"type": "string", "pattern": r"^[a-z_]+=[0-9.]+$"},
                description="threshold overrides, e.g. label_tv=0.2",
            ),
            "overrides": _overrides_param(),
        },
        default_args={"owner": "shopflow", "retries": 0},
        tags=["shopflow", "monitoring"],
        doc_md=build_drift_monitor_dag.__doc__,
    )
    def drift_monitor() -> None:
        for family in FAMILIES:
            drift_asset = Asset(drift_asset_uri(family))

            @task(task_id=f"check_{family}")
            def check(family: str = family) -> dict[str, Any]:
                conf = dict(get_current_context()["params"])
                result = run_ml_step(drift_argv(family, conf), settings, _run_overrides())
                return jsonable(result)

            @task.branch(task_id=f"decide_{family}")
            def decide(result: dict[str, Any], family: str = family) -> str:
                return f"flag_{family}" if result.get("drifted") else f"no_drift_{family}"

            @task(task_id=f"flag_{family}", outlets=[drift_asset])
            def flag(result: dict[str, Any], asset: Any = drift_asset) -> list[str]:
                # The asset event carries what was exceeded (visible in the retrain run's
                # triggering events).
                get_current_context()["outlet_events"][asset].extra = {
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

    return drift_monitor()
