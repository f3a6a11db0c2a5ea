"""Deployment settings of the DAGs (``SHOPFLOW_*`` environment variables), not model settings.

Orchestration knobs (schedules, pools, queue, retries, where training runs) come from the
environment with sensible defaults, so a deployment can change them without touching
params.yaml, whose schema is owned by :mod:`ml.core.config`. Schedules default to params.yaml's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ml.core.errors import ConfigError
from ml.orchestration.container_specs import (
    DockerMount,
    parse_node_selector,
    parse_toleration,
    split_list,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# DAGs with a cron in params.yaml `schedules` (the retrain families, ingest, drift).
SCHEDULED = ("intent", "recommender", "ingest", "drift")


class OrchestrationSettings(BaseModel):
    """Deployment knobs of the DAGs, read from ``SHOPFLOW_*`` environment variables."""

    model_config = ConfigDict(extra="forbid")

    project_dir: Path = REPO_ROOT
    params_file: str = "params.yaml"
    # Cron schedules: unset = params.yaml `schedules` (their defaults live in
    # ml.core.config.SchedulesConfig only); SHOPFLOW_<NAME>_SCHEDULE wins.
    intent_schedule: str | None = None
    recommender_schedule: str | None = None
    ingest_schedule: str | None = None
    drift_schedule: str | None = None
    # Ingest, validate and preprocess share one workspace (and DVC's repo lock): one at a time.
    data_pool: str = "dvc"
    # Training goes to this pool/queue when set (e.g. a `gpu` pool of GPU-worker slots).
    train_pool: str | None = None
    train_queue: str | None = None
    # step: call the preprocess step directly; dvc: `dvc repro --single-item <stage>` (records
    # the outputs in dvc.lock and the DVC cache, needs an initialised DVC repo).
    preprocess_mode: str = Field("step", pattern="^(step|dvc)$")
    # dvc mode only (ml.stack.data_versions): pull the preprocess stage's recorded data from the DVC
    # remote before preprocessing, push it after training and tag the new model version with
    # it. auto: when a remote is configured; required: fail without one; off: never.
    dvc_sync: Literal["auto", "required", "off"] = "auto"
    # The DVC remote to sync with; unset = DVC's default remote (`dvc remote default`).
    dvc_remote: str | None = None
    # Airflow connection (type aws: login = access key id, password = secret, extra
    # endpoint_url / region_name) applied to each step's environment (ml.stack.credentials); unset =
    # the worker's own environment (AWS_*, MLFLOW_S3_ENDPOINT_URL).
    aws_conn_id: str | None = None
    retries: int = Field(2, ge=0)
    retry_delay_s: float = Field(60.0, ge=0)
    max_retry_delay_s: float = Field(1800.0, ge=0)
    mlflow_ui_url: str = "http://127.0.0.1:5000"

    # Where the `train` task trains (ml.orchestration.containers): local = inside the Airflow
    # worker; docker = a container from trainer_image (DockerOperator); kubernetes = a pod
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
        return split_list(value)

    @field_validator("docker_mounts")
    @classmethod
    def _valid_mounts(cls, value: list[str]) -> list[str]:
        for entry in value:
            DockerMount.parse(entry)
        return value

    @field_validator("k8s_gpu_tolerations")
    @classmethod
    def _valid_tolerations(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_toleration(entry)
        return value

    @field_validator("k8s_gpu_node_selector", mode="before")
    @classmethod
    def _node_selector(cls, value: Any) -> Any:
        return parse_node_selector(value)

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
        return settings.with_schedules()

    def with_schedules(self) -> OrchestrationSettings:
        """Unset schedules filled in from the project's params.yaml (``schedules``)."""
        from ml.core.config import load_params

        missing = [name for name in SCHEDULED if getattr(self, f"{name}_schedule") is None]
        if not missing:
            return self
        schedules = load_params(self.project_dir / self.params_file).schedules
        return self.model_copy(
            update={f"{name}_schedule": getattr(schedules, name) for name in missing}
        )

    def schedule_for(self, name: str) -> str:
        """The cron of a retrain family or of ``ingest`` / ``drift``."""
        return str(getattr(self.with_schedules(), f"{name}_schedule"))
