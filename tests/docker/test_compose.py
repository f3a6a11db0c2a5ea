"""No Docker engine runs here: these tests parse the compose file and Dockerfiles and check
them against the settings the code actually reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml.core.config.serving import ServingConfig
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
    "serving",
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


def test_serving_runs_the_server_against_the_tracking_server(compose: dict[str, Any]) -> None:
    serving = compose["services"]["serving"]
    assert serving["build"] == {"context": "..", "dockerfile": "docker/serving.Dockerfile"}
    env = env_of(serving)
    worker_env = env_of(compose["services"]["airflow-worker"])
    assert env["MLFLOW_TRACKING_URI"] == worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # The token is optional and comes from docker/.env, never from the compose file itself.
    assert env["SHOPFLOW_SERVING_TOKEN"] == "${SHOPFLOW_SERVING_TOKEN:-}"
    assert re.search(r"^SHOPFLOW_SERVING_TOKEN=", (DOCKER / ".env.example").read_text(), re.M)
    serving_code = "\n".join(
        p.read_text() for p in (DOCKER.parent / "ml" / "serving").rglob("*.py")
    )
    for name in env:
        if name.startswith("SHOPFLOW_"):
            assert name in serving_code, f"{name} is read nowhere in ml/serving"
    port = ServingConfig().port
    assert f"{port}:{port}" in serving["ports"]
    assert serving["depends_on"]["mlflow"]["condition"] == "service_healthy"
    # Ready = every family has a model loaded (503 before): that is what healthy means here.
    check = " ".join(serving["healthcheck"]["test"])
    assert f"localhost:{port}/readyz" in check


def test_serving_keeps_its_prediction_log_on_a_volume(compose: dict[str, Any]) -> None:
    serving = compose["services"]["serving"]
    workdir = re.search(
        r"^WORKDIR (\S+)$", (DOCKER / "serving.Dockerfile").read_text(), re.M
    ).group(1)  # type: ignore[union-attr]
    log_dir = f"{workdir}/{ServingConfig().prediction_log_dir}"
    mounts = dict(v.rsplit(":", 1)[::-1] for v in serving["volumes"])
    assert log_dir in mounts, f"nothing mounted at {log_dir}"
    assert mounts[log_dir] in compose["volumes"], "the log must outlive the container"


def test_serving_image(repo_root: Path) -> None:
    text = (DOCKER / "serving.Dockerfile").read_text()
    assert "-c requirements/constraints.txt" in text
    # CPU torch from the PyTorch CPU index; the constraint pins the same version.
    constraints = (repo_root / "requirements/constraints.txt").read_text()
    torch = re.search(r"^torch==(\S+)$", constraints, re.M).group(1)  # type: ignore[union-attr]
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu$", text, re.M)
    assert f"torch=={torch}" in text
    # Nothing is downloaded at run time.
    assert re.search(r"HF_HUB_OFFLINE=1", text)
    user = re.search(r"^USER (\S+)$", text, re.M)
    assert user and user.group(1).split(":")[0] not in ("0", "root")
    port = ServingConfig().port
    healthcheck = re.search(r"^HEALTHCHECK .*\n(?:.*\\\n)*.*$", text, re.M)
    assert healthcheck and f"127.0.0.1:{port}/healthz" in healthcheck.group(0)
    assert re.search(rf"^EXPOSE {port}$", text, re.M)
    cmd = re.search(r"^CMD (.+)$", text, re.M)
    assert cmd and json.loads(cmd.group(1)) == [
        "python", "-m", "ml", "serve", "--host", "0.0.0.0", "--port", str(port)
    ]  # fmt: skip
