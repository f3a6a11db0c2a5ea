"""MLflow set-up and lineage: what every training run records about where it came from."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from types import FrameType

    from ml.core.config import MlflowConfig, Params

log = logging.getLogger(__name__)


# mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI for subprocesses; remember the values
# that came from us, so a later call in the same process is not mistaken for a user override.
_URIS_SET_BY_US: set[str] = set()


def exported_by_this_process(value: str) -> bool:
    """Whether an MLflow URI in the environment was put there by this process (through
    :func:`activate_tracking_uri`), not by the deployment: such a value must not be passed on
    as a setting (e.g. a host's sqlite path to a training container)."""
    return value in _URIS_SET_BY_US


def resolve_tracking_uri(cfg: MlflowConfig) -> tuple[str, str]:
    """(tracking URI, registry URI): ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` set by
    the deployment win over params.yaml, so an Airflow worker or CI can point every step at a
    tracking server without editing the configuration."""

    def from_env(name: str) -> str | None:
        value = os.environ.get(name)
        return value if value and not exported_by_this_process(value) else None

    tracking_uri = from_env("MLFLOW_TRACKING_URI") or cfg.tracking_uri
    return tracking_uri, from_env("MLFLOW_REGISTRY_URI") or tracking_uri


def activate_tracking_uri(cfg: MlflowConfig) -> tuple[str, str]:
    """Point the mlflow module at the resolved store; returns (tracking URI, registry URI)."""
    import mlflow

    tracking_uri, registry_uri = resolve_tracking_uri(cfg)
    from_environment = {
        os.environ.get("MLFLOW_TRACKING_URI"),
        os.environ.get("MLFLOW_REGISTRY_URI"),
    }
    _URIS_SET_BY_US.update({tracking_uri, registry_uri} - from_environment)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(registry_uri)
    return tracking_uri, registry_uri


def configure_mlflow(cfg: MlflowConfig, experiment: str) -> str:
    """Point MLflow at the configured store and select (creating if needed) an experiment.

    Returns the experiment id.
    """
    import mlflow

    activate_tracking_uri(cfg)
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is not None:
        mlflow.set_experiment(experiment_id=existing.experiment_id)
        return str(existing.experiment_id)
    experiment_id = mlflow.create_experiment(experiment, artifact_location=cfg.artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return str(experiment_id)


@contextmanager
def resumed_run(cfg: MlflowConfig, run_id: str) -> Iterator[Any]:
    """Reopen a finished run (e.g. the training run, to add its evaluation) in the run's own
    experiment, whatever experiment params.yaml names now; a missing run is one InputError."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ml.core.errors import InputError

    activate_tracking_uri(cfg)
    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except MlflowException as exc:
        raise InputError(
            f"MLflow run {run_id} (from registration.json) is not in the tracking store "
            f"{mlflow.get_tracking_uri()}: {str(exc).splitlines()[0]}"
        ) from exc
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    with mlflow.start_run(run_id=run_id) as active:
        yield active


def git_commit(cwd: str | Path = ".") -> str:
    """The current commit (``-dirty`` if tracked files changed); ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(path: str | Path, lock_file: str | Path = "dvc.lock") -> str:
    """The DVC hash of ``path`` when dvc.lock records it, else an md5 computed the same way
    for a file (content md5) or a stable md5 over a folder's (relative path, md5) pairs."""
    path = Path(path)
    lock = Path(lock_file)
    if lock.exists():
        stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {})
        for stage in stages.values():
            for out in stage.get("outs", []) + stage.get("deps", []):
                if Path(out.get("path", "")) == path and out.get("md5"):
                    return str(out["md5"])
    if path.is_file():
        return _md5_file(path)
    if path.is_dir():
        digest = hashlib.md5(usedforsecurity=False)
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{child.relative_to(path).as_posix()}:{_md5_file(child)}\n".encode())
        return digest.hexdigest() + ".dir"
    return "missing"


def environment_info() -> dict[str, str]:
    """Library versions and the device, as run tags."""
    info = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("torch", "transformers", "mlflow", "scikit-learn", "numpy", "pandas"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        import torch

        if torch.cuda.is_available():
            info["device"] = f"cuda:{torch.cuda.get_device_name(0)}"
        else:
            info["device"] = "cpu"
            info["cpu_threads"] = str(torch.get_num_threads())
    except ImportError:
        info["device"] = "cpu"
    return info


def lineage_tags(params: Params, data: dict[str, str | Path]) -> dict[str, Any]:
    """Tags that tie a run to code, configuration and data versions.

    ``data`` maps a short name (``train``, ``val``) to a file or folder path.
    """
    tags: dict[str, Any] = {
        "git_commit": git_commit(),
        "params_hash": params.digest(),
    }
    for name, path in data.items():
        tags[f"data.{name}.path"] = str(path)
        tags[f"data.{name}.md5"] = data_fingerprint(path)
    tags.update({f"env.{k}": v for k, v in environment_info().items()})
    return tags


# --------------------------------------------------------------------------- run lifecycle
#
# Every MLflow run a step creates (training, drift) is named and tagged so it can be told apart
# and traced back to where it came from: the family and step, the Airflow task that ran it
# (DAG id, DAG run id, task id, try number) and, once registered, the model version. It never
# stays RUNNING: an exception ends it FAILED, SIGTERM / SIGINT / an Airflow timeout KILLED, a
# retry closes what an earlier try left open, and the train task's on-failure callback
# (ml.orchestration) closes what a process killed outright could not.

FAMILY_TAG = "shopflow.family"
STEP_TAG = "shopflow.step"
MODEL_NAME_TAG = "shopflow.model_name"
MODEL_VERSION_TAG = "shopflow.model_version"
END_REASON_TAG = "shopflow.end_reason"
DAG_ID_TAG = "airflow.dag_id"
RUN_ID_TAG = "airflow.run_id"
TASK_ID_TAG = "airflow.task_id"
TRY_NUMBER_TAG = "airflow.try_number"
# AirflowTask field -> the environment variable that carries it during a step.
AIRFLOW_ENV = {
    "dag_id": "SHOPFLOW_AIRFLOW_DAG_ID",
    "run_id": "SHOPFLOW_AIRFLOW_RUN_ID",
    "task_id": "SHOPFLOW_AIRFLOW_TASK_ID",
    "try_number": "SHOPFLOW_AIRFLOW_TRY_NUMBER",
}


@dataclass(frozen=True)
class AirflowTask:
    """The Airflow task instance a step runs in. The task runtime
    (ml.orchestration.task_runtime.airflow_step) puts it in the environment for the step's duration:
    ``SHOPFLOW_AIRFLOW_*``, also seen by the step's child processes (``dvc repro`` -> ``python -m
    ml``)."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int

    def env(self) -> dict[str, str]:
        return {var: str(getattr(self, field)) for field, var in AIRFLOW_ENV.items()}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AirflowTask | None:
        """The task in the environment, None outside Airflow (CLI, DVC)."""
        env = os.environ if environ is None else environ
        values = {field: env.get(var, "") for field, var in AIRFLOW_ENV.items()}
        if not all(values.values()):
            return None
        try:
            try_number = int(values["try_number"])
        except ValueError:
            return None
        return cls(values["dag_id"], values["run_id"], values["task_id"], try_number)

    def tags(self) -> dict[str, str]:
        return {
            DAG_ID_TAG: self.dag_id,
            RUN_ID_TAG: self.run_id,
            TASK_ID_TAG: self.task_id,
            TRY_NUMBER_TAG: str(self.try_number),
        }


def run_name(
    family: str,
    step: str,
    task: AirflowTask | None,
    started: datetime,
    version: str | None = None,
) -> str:
    """``train-intent[-v3] intent_retrain/<DAG run id> try1`` in Airflow,
    ``train-intent[-v3]-20261207T030000Z`` (UTC start) outside it."""
    base = f"{step}-{family}" + (f"-v{version}" if version else "")
    if task is not None:
        return f"{base} {task.dag_id}/{task.run_id} try{task.try_number}"
    return f"{base}-{started.astimezone(UTC):%Y%m%dT%H%M%SZ}"


class StepTerminated(SystemExit):
    """SIGTERM during a step: unwinds it so that its MLflow run ends KILLED; the process exits
    with 143 (128 + SIGTERM), as it would have without the handler."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(128 + int(signum))
        self.signum = int(signum)

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"


# Exceptions that mean "stopped from outside", not "the step failed": the run ends KILLED.
# Airflow's are matched by name (this module does not import Airflow).
_KILLED_BY_NAME = {
    "AirflowTaskTimeout": "timed out (the task's execution_timeout)",
    "AirflowTaskTerminated": "terminated by Airflow",
}


def end_status(exc: BaseException) -> tuple[str, str]:
    """(MLflow run status, reason) for a step that ended with ``exc``."""
    if isinstance(exc, StepTerminated):
        return "KILLED", str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "KILLED", "interrupted (SIGINT)"
    for cls in type(exc).__mro__:
        if cls.__name__ in _KILLED_BY_NAME:
            return "KILLED", _KILLED_BY_NAME[cls.__name__]
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return "FAILED", f"{type(exc).__name__}: {message}"[:500]


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a step runs (main thread only), SIGTERM raises :class:`StepTerminated` after
    calling the handler installed before (Airflow's task runner: the operator's on_kill), so
    the run is ended KILLED instead of left RUNNING. Once per step: a second SIGTERM while the
    run is being closed is left to the first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    fired = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        if callable(previous):
            previous(signum, frame)
        raise StepTerminated(signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _running_task_runs(
    client: Any, experiment_ids: list[str], task: AirflowTask, *, tries: str
) -> list[Any]:
    """RUNNING runs of ``task``'s DAG run and task id: ``tries`` = "earlier" (try number below
    the task's) or "up_to" (the task's try and earlier)."""
    if not experiment_ids:
        return []
    found = client.search_runs(
        experiment_ids,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{DAG_ID_TAG}` = '{task.dag_id}'",
        max_results=1000,
    )
    out = []
    for run in found:
        tags = run.data.tags
        if tags.get(RUN_ID_TAG) != task.run_id or tags.get(TASK_ID_TAG) != task.task_id:
            continue
        try:
            number = int(tags.get(TRY_NUMBER_TAG, "0"))
        except ValueError:
            number = 0
        if number < task.try_number or (tries == "up_to" and number == task.try_number):
            out.append(run)
    return out


def _end_runs(client: Any, runs: list[Any], status: str, reason: str) -> list[str]:
    for run in runs:
        client.set_tag(run.info.run_id, END_REASON_TAG, reason)
        client.set_terminated(run.info.run_id, status=status)
        name = run.info.run_name
        log.warning("MLflow run %s (%s) ended %s: %s", run.info.run_id, name, status, reason)
    return [run.info.run_id for run in runs]


def close_task_runs(
    cfg: MlflowConfig,
    experiment: str,
    task: AirflowTask,
    *,
    status: str = "FAILED",
    reason: str = "the Airflow task failed",
) -> list[str]:
    """End the runs ``task`` (this try or an earlier one) left RUNNING in ``experiment``: what
    the failure callback of a task does when its process could not (killed outright, out of
    memory). Returns the run ids it ended."""
    import mlflow

    tracking_uri, _ = resolve_tracking_uri(cfg)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = _running_task_runs(client, [found.experiment_id], task, tries="up_to")
    return _end_runs(client, runs, status, reason)


def _close_earlier_tries(run: Any, task: AirflowTask) -> None:
    """A retried task closes the runs its earlier tries left RUNNING (KILLED): a try whose
    process was killed outright could not."""
    import mlflow

    try:
        client = mlflow.MlflowClient()
        stale = _running_task_runs(client, [run.info.experiment_id], task, tries="earlier")
        _end_runs(client, stale, "KILLED", f"left RUNNING by try < {task.try_number}")
    except Exception as exc:  # never fail a training for the bookkeeping of an earlier one
        log.warning("could not close the runs earlier tries left RUNNING: %s", exc)


@contextmanager
def step_run(family: str, step: str = "train") -> Iterator[Any]:
    """``mlflow.start_run`` for a step, in the experiment configure_mlflow selected: named and
    tagged (family, step, Airflow task), ended FINISHED, FAILED (an exception) or KILLED
    (SIGTERM, SIGINT, an Airflow timeout) with the reason in ``shopflow.end_reason``. Inside
    Airflow, runs an earlier try of the same task left RUNNING are ended KILLED first."""
    import mlflow

    task = AirflowTask.from_env()
    started = datetime.now(UTC)
    tags = {FAMILY_TAG: family, STEP_TAG: step, **(task.tags() if task else {})}
    with _sigterm_unwinds():
        run = mlflow.start_run(run_name=run_name(family, step, task, started), tags=tags)
        try:
            if task is not None:
                _close_earlier_tries(run, task)
            yield run
        except BaseException as exc:
            status, reason = end_status(exc)
            try:
                mlflow.set_tag(END_REASON_TAG, reason)
                mlflow.end_run(status)
                log.warning("MLflow run %s ended %s: %s", run.info.run_id, status, reason)
            except Exception as end_exc:  # the store is gone too: the step's own error matters
                log.warning("could not end MLflow run %s: %s", run.info.run_id, end_exc)
            raise
        else:
            mlflow.end_run("FINISHED")


def record_model_version(run: Any, model_name: str, version: str | int | None) -> None:
    """Tag the run with the version it registered and put the version in its name
    (``train-intent-v3 ...``)."""
    if version is None:
        return
    import mlflow

    client = mlflow.MlflowClient()
    run_id = run.info.run_id
    client.set_tag(run_id, MODEL_NAME_TAG, model_name)
    client.set_tag(run_id, MODEL_VERSION_TAG, str(version))
    tags = client.get_run(run_id).data.tags
    prefix = f"{tags.get(STEP_TAG, 'train')}-{tags.get(FAMILY_TAG, '')}"
    name = str(run.info.run_name or "")
    if name.startswith(prefix):
        client.update_run(run_id, name=f"{prefix}-v{version}{name[len(prefix) :]}")
