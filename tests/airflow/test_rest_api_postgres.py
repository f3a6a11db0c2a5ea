"""Airflow as deployed: PostgreSQL metadata, LocalExecutor, api-server + scheduler +
dag-processor as separate processes. A run is triggered through the REST API (as the UI does,
with a token from the simple auth manager) and must succeed; with the LocalExecutor, its
validated-data asset event must then start drift_monitor (data-aware scheduling)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml.orchestration.embedded import embedded_settings
from tests.support.airflow_api import AirflowApi
from tests.support.services import free_port, fresh_postgres_database

pytestmark = pytest.mark.services

PASSWORD = "shopflow-test"


# The embedded default (SQLite, LocalExecutor, started by scripts/airflow-ui.sh) is triggered
# through the UI, and so the same REST API, by tests/browser.
@pytest.fixture(params=["postgresql", "postgresql-celery"])
def metadata_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh metadata database on the local PostgreSQL (dropped afterwards).
    ``postgresql-celery`` also switches the executor to Celery (see airflow_services)."""
    import importlib.util

    if importlib.util.find_spec("asyncpg") is None:
        pytest.fail(
            "Airflow 3 on PostgreSQL needs the async driver asyncpg (the api-server and the "
            "scheduler open an async engine from sql_alchemy_conn): add asyncpg to the "
            "project's dependencies"
        )
    with fresh_postgres_database("shopflow_airflow") as url:
        yield url


def _wait(what: str, check: Any, timeout: float, procs: list[subprocess.Popen]) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError, OSError):
            result = None
        if result:
            return result
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def airflow_services(
    request: pytest.FixtureRequest,
    metadata_db: str,
    tiny_project: Path,
    repo_root: Path,
    tmp_path: Path,
) -> Iterator[AirflowApi]:
    celery = request.node.callspec.params["metadata_db"].endswith("celery")
    # Parallel tasks (LocalExecutor) must not race to create a SQLite MLflow store's tables;
    # in a deployment the tracking server has created them long before.
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{tiny_project}/mlflow.db").search_experiments()
    port = free_port()
    home = tmp_path / "airflow_home"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo_root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "SHOPFLOW_PROJECT_DIR": str(tiny_project),
        "SHOPFLOW_RETRIES": "0",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        # Process counts sized to this machine, as the UI script and the demo do: the stock 32
        # LocalExecutor workers took ~30 s to start and again to stop.
        **embedded_settings(),
    }
    if celery:
        # As in docker/docker-compose.yml: Redis broker, results in the metadata PostgreSQL,
        # a separate worker process executes the tasks.
        env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
        env["AIRFLOW__CELERY__BROKER_URL"] = f"redis://127.0.0.1:6379/{uuid.uuid4().int % 15 + 1}"
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + metadata_db
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    airflow = str(bin_dir / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run(
        [airflow, "pools", "set", "dvc", "1", "workspace"], env=env, check=True, capture_output=True
    )
    procs: list[subprocess.Popen] = []
    logs = []
    servers = (["api-server", "--host", "127.0.0.1", "--port", str(port)], ["scheduler"])
    workers = (["celery", "worker", "--queues", "default", "--concurrency", "2"],) if celery else ()
    for args in (*servers, ["dag-processor"], *workers):
        log = (home / f"{args[0]}.log").open("w")
        logs.append(log)
        # Own process group: the celery worker forks children (pool, log server) that would
        # outlive a terminate() of the parent alone.
        procs.append(
            subprocess.Popen(
                [airflow, *args], env=env, stdout=log, stderr=log, start_new_session=True
            )
        )
    api = AirflowApi(f"http://127.0.0.1:{port}", "admin", PASSWORD)
    try:
        _wait("the api-server", lambda: api.call("GET", "/api/v2/version")[0] in (200, 401, 403),
              180, procs)  # fmt: skip
        api.login()
        api.procs = procs  # type: ignore[attr-defined]
        yield api
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            with contextlib.suppress(ProcessLookupError):  # children left behind
                os.killpg(proc.pid, signal.SIGKILL)
        for log in logs:
            log.close()
        for name in ("api-server", "scheduler", "dag-processor", *(["celery"] if celery else [])):
            text = (home / f"{name}.log").read_text(errors="replace")
            print(f"----- {name} (tail)\n{text[-3000:]}")


def test_trigger_through_the_rest_api(
    airflow_services: AirflowApi, request: pytest.FixtureRequest
) -> None:
    api = airflow_services
    procs = api.procs  # type: ignore[attr-defined]
    # Asset-triggered scheduling is the scheduler's business, not the executor's: the Celery
    # variant proves that a worker runs the tasks (shop_ingest) and stops there.
    follow_asset = not request.node.callspec.params["metadata_db"].endswith("celery")
    dag_ids = ("shop_ingest", "drift_monitor") if follow_asset else ("shop_ingest",)
    _wait(
        "the DAGs to be parsed",
        lambda: all(api.call("GET", f"/api/v2/dags/{d}")[0] == 200 for d in dag_ids),
        240,
        procs,
    )
    for dag_id in dag_ids:
        status, body = api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200, body

    # The trigger form's schema is enforced by the API too.
    status, body = api.call(
        "POST", "/api/v2/dags/shop_ingest/dagRuns", {"logical_date": None, "conf": {"days": 0}}
    )
    assert status == 400, (status, body)

    status, run = api.call(
        "POST",
        "/api/v2/dags/shop_ingest/dagRuns",
        {"logical_date": None, "conf": {"first_day": 0, "days": 2}},
    )
    assert status == 200, (status, run)
    run_id = run["dag_run_id"]

    def finished() -> str | None:
        code, body = api.call("GET", f"/api/v2/dags/shop_ingest/dagRuns/{run_id}")
        return body["state"] if code == 200 and body["state"] in ("success", "failed") else None

    assert _wait("shop_ingest to finish", finished, 360, procs) == "success"
    if not follow_asset:
        return

    # Validated data is an asset event; drift_monitor is scheduled on it.
    def monitor_run() -> dict | None:
        code, body = api.call("GET", "/api/v2/dags/drift_monitor/dagRuns")
        runs = body.get("dag_runs", []) if code == 200 else []
        # (Unpausing may also start the latest cron run; only the asset-triggered one counts.)
        done = [
            r
            for r in runs
            if r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")
        ]
        return done[0] if done else None

    monitor = _wait("drift_monitor (asset-triggered) to finish", monitor_run, 480, procs)
    assert monitor["state"] == "success", monitor
