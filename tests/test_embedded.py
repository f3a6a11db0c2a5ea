"""The embedded setup's process settings (ml/orchestration/embedded.py): sized to the CPUs, one
source for `make demo` and scripts/airflow-ui.sh; no MLflow server job runner where shopflow
starts one."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ml.orchestration import demo
from ml.orchestration.embedded import (
    MLFLOW_NO_JOB_EXECUTION,
    available_cpus,
    embedded_settings,
    shell_exports,
)
from tests.support.services import mlflow_server

REPO_ROOT = Path(__file__).resolve().parents[1]
UI_SCRIPT = REPO_ROOT / "scripts" / "airflow-ui.sh"
# The two lines of scripts/airflow-ui.sh that take the sizing from ml.orchestration.embedded.
SCRIPT_SIZING = 'sizing="$("${BIN}/python" -m ml.orchestration.embedded)"\neval "${sizing}"\n'


def _ints(settings: dict[str, str]) -> dict[str, int]:
    return {k: int(v) for k, v in settings.items() if v.isdigit()}


def test_two_cpus_get_a_small_setup_sixteen_a_larger_one() -> None:
    two, sixteen = _ints(embedded_settings(2)), _ints(embedded_settings(16))
    # Stock Airflow forks 32 LocalExecutor workers and mlflow ui 4 workers, whatever the machine.
    assert two == {
        "AIRFLOW__CORE__PARALLELISM": 2,
        "AIRFLOW__API__WORKERS": 1,
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": 1,
        "SHOPFLOW_MLFLOW_UI_WORKERS": 1,
    }
    assert sixteen == {
        "AIRFLOW__CORE__PARALLELISM": 16,
        "AIRFLOW__API__WORKERS": 4,
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": 4,
        "SHOPFLOW_MLFLOW_UI_WORKERS": 4,
    }
    for cpus in (2, 16):
        assert embedded_settings(cpus)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_settings_grow_with_the_cpus_within_bounds() -> None:
    previous = _ints(embedded_settings(1))
    assert previous["AIRFLOW__CORE__PARALLELISM"] == 2  # both retrain DAGs can run at once
    for cpus in range(2, 129):
        current = _ints(embedded_settings(cpus))
        assert all(current[k] >= previous[k] for k in current), cpus
        previous = current
    assert previous["AIRFLOW__CORE__PARALLELISM"] == 32  # never above Airflow's default
    assert max(previous.values()) == 32
    with pytest.raises(ValueError):
        embedded_settings(0)


def test_default_is_sized_to_the_cpus_this_process_may_use() -> None:
    assert available_cpus() == len(os.sched_getaffinity(0))
    assert embedded_settings() == embedded_settings(available_cpus())


def test_explicit_environment_settings_win_in_the_script_exports() -> None:
    settings = embedded_settings(2)
    text = shell_exports(settings, {"AIRFLOW__CORE__PARALLELISM": "7"})
    assert "AIRFLOW__CORE__PARALLELISM" not in text
    assert "export AIRFLOW__API__WORKERS=1\n" in text
    assert len(text.splitlines()) == len(settings) - 1


def _script_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Run scripts/airflow-ui.sh's own sizing lines in bash; the variables they export."""
    script = UI_SCRIPT.read_text()
    assert SCRIPT_SIZING in script, "scripts/airflow-ui.sh no longer takes its sizing from ml"
    env = {k: v for k, v in os.environ.items() if k not in embedded_settings()}
    env |= {"BIN": str(Path(sys.executable).parent), **(extra or {})}
    out = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + SCRIPT_SIZING + "env -0"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


def test_demo_and_ui_script_get_the_same_settings(tmp_path: Path) -> None:
    saved = dict(os.environ)
    try:
        for key in embedded_settings():
            os.environ.pop(key, None)
        demo_env = demo.configure_environment(tmp_path)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    script_env = _script_environment()
    expected = embedded_settings()
    assert {k: demo_env[k] for k in expected} == expected
    assert {k: script_env[k] for k in expected} == expected
    # The script passes the worker count to mlflow ui and leaves the rest to Airflow's env.
    assert '--workers "${SHOPFLOW_MLFLOW_UI_WORKERS}"' in UI_SCRIPT.read_text()


def test_ui_script_keeps_a_value_set_by_the_user() -> None:
    script_env = _script_environment({"AIRFLOW__CORE__PARALLELISM": "3"})
    assert script_env["AIRFLOW__CORE__PARALLELISM"] == "3"
    assert script_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_cli_prints_exports_for_a_given_cpu_count() -> None:
    env = {k: v for k, v in os.environ.items() if k not in embedded_settings()}
    out = subprocess.run(
        [sys.executable, "-m", "ml.orchestration.embedded", "--cpus", "16"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == shell_exports(embedded_settings(16), {})
    bad = subprocess.run(
        [sys.executable, "-m", "ml.orchestration.embedded", "--cpus", "0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--cpus must be >= 1" in bad.stderr


def test_compose_mlflow_server_runs_no_job_runner() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker" / "docker-compose.yml").read_text())
    env = compose["services"]["mlflow"]["environment"]
    assert {k: str(env[k]) for k in MLFLOW_NO_JOB_EXECUTION} == MLFLOW_NO_JOB_EXECUTION


@pytest.mark.services
def test_mlflow_server_fixture_runs_no_huey_consumer(tmp_path: Path) -> None:
    """With a database backend store, `mlflow server` also starts a job runner and its huey
    consumers (8 processes on 2 CPUs) unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false."""
    import psutil

    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"}
    with mlflow_server(backend, str(tmp_path / "artifacts"), env, tmp_path / "server.log") as srv:
        server = psutil.Process(srv.pid)
        deadline = time.monotonic() + 3  # the job runner starts with the server; look a while
        while True:
            commands = []
            for child in server.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    commands.append(" ".join(child.cmdline()))
            jobs = [c for c in commands if "huey" in c or "mlflow.server.jobs" in c]
            assert not jobs, jobs
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        # Looking at the right tree: the uvicorn server answering /health is in it.
        assert any("uvicorn" in c for c in commands), commands
