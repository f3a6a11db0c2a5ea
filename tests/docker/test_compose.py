"""No Docker engine runs here: these tests parse the compose file and Dockerfiles and check
them against the settings the code actually reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml.orchestration.settings import OrchestrationSettings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
LONG_RUNNING = {
    "postgres",
    "redis",
    "minio",
    "mlflow",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    return {str(k): str(v) for k, v in env.items()}


def test_every_component_is_there_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert LONG_RUNNING | {"airflow-init", "minio-init"} <= set(services)
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
        assert services[name].get("restart") == "always", name


def test_airflow_runs_celery_on_redis_with_postgres(compose: dict[str, Any]) -> None:
    env = env_of(compose["services"]["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    # psycopg2 named explicitly: SQLAlchemy 2.1 would otherwise pick psycopg 3 (not installed).
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert "@postgres:5432/" in env["AIRFLOW__CELERY__RESULT_BACKEND"]
    # Tasks report to the api-server service by its compose name and port.
    api = compose["services"]["airflow-apiserver"]
    assert "8080:8080" in api["ports"]
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )


def test_mlflow_server_uses_postgres_and_the_bucket(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    args = mlflow["command"]
    backend = args[args.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg2://") and backend.endswith("${MLFLOW_DB}")
    assert args[args.index("--artifacts-destination") + 1].startswith("s3://${MLFLOW_BUCKET}")
    assert "--serve-artifacts" in args
    assert env_of(mlflow)["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    worker_env = env_of(compose["services"]["airflow-worker"])
    assert worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_shopflow_settings_in_compose_are_ones_the_code_reads(compose: dict[str, Any]) -> None:
    env = env_of(compose["services"]["airflow-worker"])
    known = {f"SHOPFLOW_{name.upper()}" for name in OrchestrationSettings.model_fields}
    used = {k for k in env if k.startswith("SHOPFLOW_")}
    assert used <= known, f"unknown settings: {sorted(used - known)}"
    # The values that are fixed here must validate.
    fixed = {
        k.removeprefix("SHOPFLOW_").lower(): v
        for k, v in env.items()
        if k.startswith("SHOPFLOW_") and "${" not in v
    }
    OrchestrationSettings.model_validate(fixed)


def test_gpu_worker_reserves_a_gpu_and_serves_the_train_queue(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["airflow-worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "--queues gpu" in gpu["command"]
    env_example = (DOCKER / ".env.example").read_text()
    assert re.search(r"^SHOPFLOW_TRAIN_QUEUE=gpu$", env_example, re.M)
    assert "celery worker --queues default" in " ".join(
        compose["services"]["airflow-worker"]["command"]
    )


def test_the_worker_running_dvc_tasks_has_the_remote(compose: dict[str, Any]) -> None:
    """pull_data / preprocess / push_data run on the default-queue worker: its own checkout
    must know the S3 remote (.dvc/config.local is per container), and sync is required."""
    worker = compose["services"]["airflow-worker"]
    script = " ".join(worker["command"])
    assert "dvc remote add --local --force --default s3" in script
    assert "endpointurl" in script
    assert script.index("dvc remote add") < script.index("exec airflow celery worker")
    env = env_of(worker)
    assert env["SHOPFLOW_PREPROCESS_MODE"] == "dvc" and env["SHOPFLOW_DVC_SYNC"] == "required"
    assert env["DVC_REMOTE_URL"].startswith("s3://")


def test_every_variable_the_compose_file_needs_is_in_env_example(compose: dict[str, Any]) -> None:
    text = (DOCKER / "docker-compose.yml").read_text()
    # $${VAR} is expanded inside the container, not by compose.
    needed = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}", text))
    example = {
        line.split("=", 1)[0]
        for line in (DOCKER / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    optional = {m.group(1) for m in re.finditer(r"\$\{([A-Z0-9_]+):-[^}]*\}", text)} | {
        "TORCH_CUDA_INDEX_URL"
    }
    assert needed - optional <= example, sorted(needed - optional - example)


def test_build_contexts_and_copied_paths_exist(compose: dict[str, Any]) -> None:
    root = DOCKER.parent
    for name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            assert "image" in service, name
            continue
        dockerfile = (DOCKER / build["context"] / build["dockerfile"]).resolve()
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
    for dockerfile in DOCKER.glob("*.Dockerfile"):
        text = dockerfile.read_text()
        assert re.search(r"^FROM \S+", text, re.M), dockerfile
        for line in re.findall(r"^COPY (?:--\S+ )*(.+)$", text, re.M):
            *sources, _dest = line.split()
            for source in sources:
                assert (root / source).exists(), f"{dockerfile.name}: COPY {source} missing"


def test_images_pin_the_stack(repo_root: Path) -> None:
    airflow = (DOCKER / "airflow.Dockerfile").read_text()
    pyproject = (repo_root / "pyproject.toml").read_text()
    version = re.search(r'"apache-airflow==([\d.]+)"', pyproject)
    assert version and f"ARG AIRFLOW_VERSION={version.group(1)}" in airflow
    assert "-c requirements/constraints.txt" in airflow
    trainer = (DOCKER / "trainer.Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "ml"]' in trainer and "cuda" in trainer
    mlflow = (DOCKER / "mlflow.Dockerfile").read_text()
    assert re.search(r'"mlflow==([\d.]+)"', mlflow).group(1) in pyproject  # type: ignore[union-attr]
