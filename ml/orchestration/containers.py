"""The training step in a container (DockerOperator) or a Kubernetes pod (KubernetesPodOperator).

With ``SHOPFLOW_TRAIN_RUNNER=docker|kubernetes`` the retrain DAG's ``train`` task starts the
trainer image (docker/trainer.Dockerfile) instead of training inside the Airflow worker. The
container runs the same command as everywhere else, ``python -m ml train <family> --params ...
--set ... --output-json <file>``, in the project folder, which must be shared storage: the worker
reads the result file afterwards (a bind mount or named volume for Docker, a
PersistentVolumeClaim for Kubernetes).

Credentials never enter the DAG definition: Docker gets their *names*, and the values are read
from the worker's environment when the task runs (``private_environment``: neither templated nor
shown in the UI); a pod gets them from a Kubernetes Secret named in the settings.

When things are read. The operators' own settings (OrchestrationSettings, ``SHOPFLOW_*``) are
read when the DAG file is parsed and stay so: runner, image, GPUs, project folder, mounts,
network, user, engine URL, namespace, PVC, Secret *name*, service account, GPU placement,
startup timeout, pool and queue. They define the task itself (the runner picks the operator
class, the pool and queue route it in the scheduler, the UI shows the image and the GPU request
from the serialized DAG), so the dag-processor and the workers must agree on them and a
deployment sets them for both. What describes the worker instead of the task is read on the
worker in ``execute``: the PASSED_SETTINGS values (which MLflow / S3 endpoints the worker
reaches), the credentials (Docker), and the ``DOCKER_HOST`` fallback of the Docker engine when
SHOPFLOW_DOCKER_URL is unset. Execute logs the settings it passes, and the operators re-record
their rendered fields after the run (``overwrite_rtif_after_execution``), so ``environment`` /
``env_vars`` in the UI show the values the container got; a secret never appears there.

Plain Python at import time: Airflow, provider, docker and kubernetes imports are inside the
functions, so the settings helpers are usable (and testable) without them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ml.core.errors import ConfigError
from ml.orchestration.container_specs import DockerMount, parse_toleration

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from ml.orchestration.settings import OrchestrationSettings

# The trainer image's ENTRYPOINT, set explicitly so the argv does not depend on the image's.
TRAINER_ENTRYPOINT = ("python", "-m", "ml")
# Written by the container under the DAG run's ledger folder (paths.reports), read by the worker.
RESULT_FILE = "train-output.json"
GPU_RESOURCE = "nvidia.com/gpu"
PROJECT_VOLUME = "shopflow-project"
# The provider's name for the pod's main container (KubernetesPodOperator.BASE_CONTAINER_NAME).
BASE_CONTAINER = "base"

# Copied from the worker's environment into the container when present, read when the task
# runs (not when the DAG file is parsed). Not secret: logged by the task and shown in its
# rendered fields after the run, which helps to see where the container logs to.
PASSED_SETTINGS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
)
# Secret: only their names are in the DAG (Docker: values read on the worker at run time;
# Kubernetes: the pod takes them from SHOPFLOW_K8S_SECRET).
CREDENTIAL_NAMES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)


def docker_mounts(settings: OrchestrationSettings) -> list[DockerMount]:
    """SHOPFLOW_DOCKER_MOUNTS, or by default the worker's project folder bind-mounted at the
    container's project folder (right when the worker runs on the Docker host itself)."""
    if settings.docker_mounts:
        return [DockerMount.parse(entry) for entry in settings.docker_mounts]
    return [DockerMount(str(settings.project_dir.resolve()), settings.trainer_project_dir)]


# --------------------------------------------------------------------------- paths and argv


def result_file(run_folder: Path) -> Path:
    """Where the container writes the train step's result (the worker-side path)."""
    return run_folder / RESULT_FILE


def container_path(path: Path, settings: OrchestrationSettings, what: str) -> PurePosixPath:
    """The container's path of a file in the worker's project folder.

    Only the project folder is shared, so anything outside it cannot be handed over.
    """
    project = settings.project_dir.resolve()
    try:
        relative = path.resolve().relative_to(project)
    except ValueError:
        raise ConfigError(
            f"{what} {path} is outside the project folder {project} (SHOPFLOW_PROJECT_DIR): the "
            f"training container only sees the project folder; keep {what} inside it"
        ) from None
    inside = PurePosixPath(settings.trainer_project_dir).joinpath(*relative.parts)
    if settings.train_runner == "docker":
        check_mounted(inside, docker_mounts(settings), what)
    return inside


def check_mounted(inside: PurePosixPath, mounts: Sequence[DockerMount], what: str) -> None:
    """The file must be on a mount, or the worker never sees what the container wrote there."""
    for mount in mounts:
        if inside == PurePosixPath(mount.target) or PurePosixPath(mount.target) in inside.parents:
            return
    targets = ", ".join(m.target for m in mounts)
    raise ConfigError(
        f"{what} would be {inside} in the training container, which is on none of the mounts "
        f"in SHOPFLOW_DOCKER_MOUNTS ({targets}): mount the shared folder that holds it"
    )


def trainer_argv(args: Sequence[str]) -> list[str]:
    """The whole command line the container runs (entrypoint + the step's arguments)."""
    return [*TRAINER_ENTRYPOINT, *args]


def worker_environment(
    names: Sequence[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables among ``names`` that are set (non-empty) in the worker's environment; an
    unset one is left out, not passed empty. Call it when the task runs, on the worker.

    An MLflow URI that an earlier step in this process exported (``mlflow.set_tracking_uri``
    does; ``airflow dags test`` runs every task in one process) is the host's params.yaml
    value, not a deployment setting: it is left out, so the container resolves its own."""
    from ml.stack.tracking import exported_by_this_process

    env = os.environ if environ is None else environ
    return {
        name: env[name]
        for name in names
        if env.get(name) and not exported_by_this_process(env[name])
    }


def worker_credentials(names: Sequence[str], environ: Mapping[str, str] | None = None) -> dict:
    """The credentials (by name) the worker's environment holds, read when the task runs."""
    return worker_environment(names, environ)


# --------------------------------------------------------------------------- operators


def train_operator(
    settings: OrchestrationSettings, family: str, arguments: Any, **task_options: Any
) -> BaseOperator:
    """The ``train`` task for SHOPFLOW_TRAIN_RUNNER (docker or kubernetes).

    ``arguments``: the step's arguments after ``python -m ml`` (a list, or the XComArg of the
    task that computes them at run time); ``task_options``: task_id, pool, queue, retries...
    """
    if settings.train_runner == "docker":
        return docker_train_operator(settings, family, arguments, **task_options)
    if settings.train_runner == "kubernetes":
        return kubernetes_train_operator(settings, family, arguments, **task_options)
    raise ConfigError(
        f"SHOPFLOW_TRAIN_RUNNER={settings.train_runner!r} does not run training in a container "
        "(docker or kubernetes)"
    )


# What DockerOperator falls back to without docker_url or DOCKER_HOST.
DEFAULT_DOCKER_URL = "unix://var/run/docker.sock"


@functools.cache
def _docker_operator_class() -> type:
    from airflow.providers.docker.operators.docker import DockerOperator

    class TrainerDockerOperator(DockerOperator):
        """DockerOperator that reads the worker's environment when the task runs: the
        non-secret settings (``setting_names``) into ``environment``, the credentials
        (``credential_names``) into the private environment, whose values are in neither the
        DAG definition, the serialized DAG nor the UI; and, without an explicit ``docker_url``,
        the worker's DOCKER_HOST (DockerOperator itself reads it when the DAG file is parsed).
        """

        # environment is re-recorded after the run: the UI shows what the container got.
        overwrite_rtif_after_execution = True

        def __init__(
            self,
            *,
            setting_names: Sequence[str] = (),
            credential_names: Sequence[str] = (),
            docker_url: str | list[str] | None = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(docker_url=docker_url, **kwargs)
            self.setting_names = list(setting_names)
            self.credential_names = list(credential_names)
            # None: the engine is the worker's DOCKER_HOST (or the local socket), see execute.
            self.docker_url_setting = docker_url

        def resolve_worker_environment(self) -> None:
            """Fill the container's environment from the worker's (called by execute)."""
            # Explicit values (the operator's arguments, rendered) win over the worker's.
            self.environment = {**worker_environment(self.setting_names), **self.environment}
            credentials = worker_credentials(self.credential_names)
            # DockerOperator keeps private_environment (merged into the container's
            # environment, never rendered) in this attribute.
            self._private_environment = {**credentials, **self._private_environment}
            if self.docker_url_setting is None:
                self.docker_url = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL
                self.__dict__.pop("hook", None)  # a DockerHook made for the parse-time URL
            self.log.info(
                "container settings from the worker's environment: %s; credentials: %s; "
                "Docker engine: %s",
                _shown(self.setting_names, self.environment),
                ", ".join(sorted(credentials)) or "none",
                self.docker_url,
            )

        def execute(self, context: Any) -> Any:
            self.resolve_worker_environment()
            return super().execute(context)

    # Serialized DAGs name the class; make it the importable-looking name, not a <locals> one.
    TrainerDockerOperator.__module__ = __name__
    TrainerDockerOperator.__qualname__ = TrainerDockerOperator.__name__
    return TrainerDockerOperator


def docker_train_operator(
    settings: OrchestrationSettings, family: str, arguments: Any, **task_options: Any
) -> BaseOperator:
    """A DockerOperator running the trainer image with the project folder mounted."""
    from docker.types import DeviceRequest, Mount

    # Everything here is fixed when the DAG file is parsed (see the module docstring) except
    # setting_names / credential_names and, with docker_url unset, DOCKER_HOST: those are read
    # from the worker's environment in execute.
    mounts = [Mount(m.target, m.source, type=m.kind) for m in docker_mounts(settings)]
    gpus = settings.train_gpus
    operator: BaseOperator = _docker_operator_class()(
        image=settings.trainer_image,
        entrypoint=list(TRAINER_ENTRYPOINT),
        command=arguments,
        working_dir=settings.trainer_project_dir,
        mounts=mounts,
        # `docker run --gpus N`; no request at all for a CPU-only run.
        device_requests=[DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None,
        docker_url=settings.docker_url,
        network_mode=settings.docker_network,
        user=settings.docker_user,
        setting_names=PASSED_SETTINGS,
        credential_names=CREDENTIAL_NAMES,
        # The logs are streamed into the task log, so a finished container is not needed.
        auto_remove="force",
        # Its host temp-dir mount fails on a remote engine or from inside a container.
        mount_tmp_dir=False,
        # The result comes back through --output-json, not the last log line.
        do_xcom_push=False,
        labels={"app": "shopflow-trainer", "shopflow.family": family},
        **task_options,
    )
    return operator


def _shown(names: Sequence[str], passed: Mapping[str, Any]) -> str:
    """``NAME=value, ...`` of the non-secret settings passed, and which of them are unset."""
    shown = [f"{name}={passed[name]}" for name in names if name in passed]
    unset = [name for name in names if name not in passed]
    return ", ".join(shown or ["none"]) + (f" (unset: {', '.join(unset)})" if unset else "")


@functools.cache
def _kubernetes_operator_class() -> type:
    from airflow.providers.cncf.kubernetes.backcompat.backwards_compat_converters import (
        convert_env_vars_or_raise_error,
    )
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    class TrainerKubernetesPodOperator(KubernetesPodOperator):
        """KubernetesPodOperator that adds the non-secret settings (``setting_names``) from the
        worker's environment to the pod's environment when the task runs, before the provider
        builds the pod request (``build_pod_request_obj``, in both its sync and deferrable
        paths). Credentials come from the Kubernetes Secret, never from here."""

        # env_vars is re-recorded after the run: the UI shows what the pod got.
        overwrite_rtif_after_execution = True

        def __init__(self, *, setting_names: Sequence[str] = (), **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.setting_names = list(setting_names)

        def resolve_worker_environment(self) -> None:
            """Add the worker's settings to env_vars (called by execute). Rendering has already
            turned a dict into V1EnvVar objects; the provider's converter takes either."""
            explicit = convert_env_vars_or_raise_error(self.env_vars) if self.env_vars else []
            given = {env.name for env in explicit}
            # Explicit values (the operator's arguments, rendered) win over the worker's.
            worker = {
                name: value
                for name, value in worker_environment(self.setting_names).items()
                if name not in given
            }
            self.env_vars = [
                *explicit,
                *(k8s.V1EnvVar(name=name, value=value) for name, value in worker.items()),
            ]
            passed = {env.name: env.value for env in self.env_vars}
            self.log.info(
                "pod settings from the worker's environment: %s",
                _shown(self.setting_names, passed),
            )

        def execute(self, context: Any) -> Any:
            self.resolve_worker_environment()
            return super().execute(context)

    TrainerKubernetesPodOperator.__module__ = __name__
    TrainerKubernetesPodOperator.__qualname__ = TrainerKubernetesPodOperator.__name__
    return TrainerKubernetesPodOperator


def kubernetes_train_operator(
    settings: OrchestrationSettings, family: str, arguments: Any, **task_options: Any
) -> BaseOperator:
    """A KubernetesPodOperator running the trainer image with the project PVC mounted."""
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    # Everything here but setting_names is fixed when the DAG file is parsed (see the module
    # docstring); those are read from the worker's environment in execute.
    gpus = settings.train_gpus
    project = settings.trainer_project_dir
    operator: BaseOperator = _kubernetes_operator_class()(
        name=f"shopflow-train-{family}",
        namespace=settings.k8s_namespace,
        image=settings.trainer_image,
        cmds=list(TRAINER_ENTRYPOINT),
        arguments=arguments,
        container_resources=(
            k8s.V1ResourceRequirements(limits={GPU_RESOURCE: str(gpus)}) if gpus else None
        ),
        # GPU placement only for a GPU run: a CPU run can go to any node.
        node_selector=dict(settings.k8s_gpu_node_selector) if gpus else None,
        tolerations=(
            [k8s.V1Toleration(**parse_toleration(t)) for t in settings.k8s_gpu_tolerations]
            if gpus
            else None
        ),
        volumes=[
            k8s.V1Volume(
                name=PROJECT_VOLUME,
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=settings.k8s_project_pvc
                ),
            )
        ],
        volume_mounts=[k8s.V1VolumeMount(name=PROJECT_VOLUME, mount_path=project)],
        # The operator has no working-dir option; the pod template's base container carries it
        # (params.yaml and every path in it are relative to the project folder).
        full_pod_spec=k8s.V1Pod(
            spec=k8s.V1PodSpec(
                containers=[k8s.V1Container(name=BASE_CONTAINER, working_dir=project)]
            )
        ),
        setting_names=PASSED_SETTINGS,
        # The whole Secret as environment variables (envFrom): the DAG names it, never a value.
        secrets=[Secret("env", None, settings.k8s_secret)] if settings.k8s_secret else None,
        service_account_name=settings.k8s_service_account,
        labels={"app": "shopflow-trainer", "shopflow-family": family},
        startup_timeout_seconds=settings.k8s_startup_timeout_s,
        get_logs=True,
        on_finish_action="delete_pod",
        **task_options,
    )
    return operator
