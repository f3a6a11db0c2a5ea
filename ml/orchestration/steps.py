"""Task bodies that are more than one step call: training once per DAG run (in-process or in
a container), DVC stages and data versions, and the tags a new version gets for the drift
monitor. Each takes the task's :class:`~ml.orchestration.runtime.RunContext`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import ConfigError, InputError
from ml.orchestration import containers
from ml.orchestration.runtime import in_project, jsonable, step_argv, step_credentials

if TYPE_CHECKING:
    from ml.core.families import Family
    from ml.orchestration.runtime import RunContext, StepLedger
    from ml.orchestration.settings import OrchestrationSettings

log = logging.getLogger(__name__)


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
    from ml.stack.data_versions import run_dvc

    proc = run_dvc(settings.project_dir, "repro", "--single-item", stage)
    log.info("dvc repro %s:\n%s", stage, proc.stdout[-4000:])
    if proc.returncode != 0:
        raise ConfigError(
            f"dvc repro --single-item {stage} failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout)[-2000:]}"
        )
    return {"stage": stage, "mode": "dvc"}


def _ledger(ctx: RunContext) -> StepLedger:
    if ctx.ledger is None:
        raise ValueError("this step needs the DAG run's ledger (RunContext.create(run=...))")
    return ctx.ledger


def train_once(spec: Family, ctx: RunContext) -> dict[str, Any]:
    """Train and register once per DAG run: a retry after success reuses the registration."""
    ledger = _ledger(ctx)
    done = ledger.get("train")
    if done is not None:
        log.info("train already finished in this DAG run; reusing %s", done.get("registration"))
        return done | {"reused": True}
    result = ctx.run(["train", spec.name])
    result["trained_on"] = tag_trained_on(spec, ctx, result)
    ledger.put("train", result)
    return result | {"reused": False}


def container_train_args(spec: Family, ctx: RunContext) -> list[str]:
    """The arguments after ``python -m ml`` for the training container: the same step, params
    and overrides as in-process training, plus ``--output-json`` into the shared project folder
    (container paths: the folder is mounted at ``settings.trainer_project_dir``)."""
    from airflow.sdk.exceptions import AirflowSkipException

    settings, ledger = ctx.settings, _ledger(ctx)
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
    argv = step_argv(["train", spec.name], params_file, ctx.overrides)
    argv += ["--output-json", str(inside)]
    log.info("the container runs: %s", " ".join(containers.trainer_argv(argv)))
    return argv


def record_container_training(spec: Family, ctx: RunContext) -> dict[str, Any]:
    """After the container: what :func:`train_once` returns in-process (the step's result,
    ``trained_on`` tagged on the new version, in the ledger under ``train``)."""
    ledger = _ledger(ctx)
    output = containers.result_file(ledger.folder)
    if output.is_file():
        result = jsonable(json.loads(output.read_text(encoding="utf-8")))
        result["trained_on"] = tag_trained_on(spec, ctx, result)
        ledger.put("train", result)
        output.unlink()  # consumed: the ledger has it now
        return result | {"reused": False}
    done = ledger.get("train")
    if done is not None:
        log.info("train already finished in this DAG run; reusing %s", done.get("registration"))
        return done | {"reused": True}
    raise InputError(
        f"the training container left no result at {output}: the project folder must be shared "
        "storage mounted at SHOPFLOW_TRAINER_PROJECT_DIR "
        f"({ctx.settings.trainer_project_dir}) in the container (SHOPFLOW_DOCKER_MOUNTS for "
        "docker, SHOPFLOW_K8S_PROJECT_PVC for kubernetes)"
    )


def syncs_data(settings: OrchestrationSettings) -> bool:
    """Whether the retrain DAGs pull/push data versions (dvc preprocess mode, sync not off)."""
    return settings.preprocess_mode == "dvc" and settings.dvc_sync != "off"


def pull_data_version(spec: Family, settings: OrchestrationSettings) -> dict[str, Any]:
    """Before preprocessing: the stage's recorded outputs from the DVC remote (a fresh worker
    gets the last version back, so an unchanged stage is skipped instead of recomputed)."""
    from ml.stack.data_versions import pull_stage, resolve_remote

    project = settings.project_dir
    if resolve_remote(project, settings.dvc_remote) is None:
        return no_remote(settings, "pull")
    with step_credentials(settings):
        return pull_stage(project, spec.dvc_preprocess_stage, settings.dvc_remote)


def push_data_version(spec: Family, ctx: RunContext, train: dict[str, Any]) -> dict[str, Any]:
    """After training: push the data the new version learnt from and tag the version with the
    stage's dvc.lock entry (``python -m ml restore-data <family> --version N`` pulls it back)."""
    from ml.stack.data_versions import DATA_VERSION_TAG, push_stage, resolve_remote
    from ml.stack.model_store import tag_registered_version

    settings = ctx.settings
    project = settings.project_dir
    if resolve_remote(project, settings.dvc_remote) is None:
        return no_remote(settings, "push")
    with step_credentials(settings):
        result = push_stage(project, spec.dvc_preprocess_stage, settings.dvc_remote)
    registration = train.get("registration") or {}
    with in_project(settings):
        if tag_registered_version(ctx.params, registration, DATA_VERSION_TAG, result["lock"]):
            log.info("%s v%s tagged with its data version", *_version_of(registration))
    outs = {o["path"]: o.get("md5") for o in result["lock"].get("outs", [])}
    return {"stage": result["stage"], "remote": result["remote"], "outs": outs}


def _version_of(registration: dict[str, Any]) -> tuple[str, str]:
    return str(registration.get("model_name")), str(registration.get("version"))


def record_dvc_results(spec: Family, ctx: RunContext) -> dict[str, Any]:
    """After train and evaluate (dvc mode): record their DVC stages in dvc.lock, so `dvc repro`
    agrees they are up to date; not when the run's overrides changed a param they declare."""
    from ml.stack.data_versions import record_stages

    stages = [spec.dvc_train_stage, spec.dvc_evaluate_stage]
    settings = ctx.settings
    return record_stages(settings.project_dir, stages, settings.params_file, ctx.overrides)


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


def tag_trained_on(spec: Family, ctx: RunContext, result: dict[str, Any]) -> dict[str, list[str]]:
    """Tag the new version with the validated partition dates it learnt from: the drift
    monitor's reference for this model once it is champion."""
    from ml.monitoring.drift import dated_partitions
    from ml.stack.model_store import TRAINED_ON_TAG, tag_registered_version

    params = ctx.params
    with in_project(ctx.settings):
        dates = {ds: sorted(dated_partitions(params.paths.validated, ds)) for ds in spec.datasets}
        tag_registered_version(params, result.get("registration") or {}, TRAINED_ON_TAG, dates)
    return dates


def drift_argv(family: str, conf: dict[str, Any]) -> list[str]:
    """``drift <family>`` options from the drift monitor's Params."""
    from ml.monitoring.options import DriftRunOptions

    sample = conf.get("sample") or DriftRunOptions.model_fields["sample"].default
    argv = ["drift", family, "--sample", str(int(sample))]
    if conf.get("model_path"):
        argv += ["--model-path", str(conf["model_path"])]
    for entry in conf.get("thresholds") or []:
        argv += ["--threshold", entry]
    return argv
