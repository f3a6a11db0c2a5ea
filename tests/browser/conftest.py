"""Real-browser tests: the project's own ``scripts/airflow-ui.sh`` (MLflow UI + Airflow api-server,
scheduler, dag-processor, triggerer) on a throw-away project, driven by Debian's chromium through
Python playwright.

Needs ``/usr/bin/chromium`` and playwright in .venv: ``scripts/install-browser.sh`` installs both.
A missing browser fails these tests (it never skips them).

Screenshots (each major step, and every open page on failure) go to ``test-output/browser/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.airflow_api import AirflowApi
from tests.support.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS_DIR = REPO_ROOT / "test-output" / "browser"
INSTALL_HINT = "run scripts/install-browser.sh (Debian chromium + playwright in .venv)"
UI_START_TIMEOUT_S = 240  # SHOPFLOW_UI_START_TIMEOUT for the script; 2 busy cores are slow
STOP_TIMEOUT_S = 30


# ----------------------------------------------------------------------------- small helpers


def _tail(path: Path, chars: int = 3000) -> str:
    if not path.is_file():
        return f"({path} missing)"
    return path.read_text(errors="replace")[-chars:]


# ----------------------------------------------------------------------------- the UI stack


@dataclass
class UiStack:
    """scripts/airflow-ui.sh running on a throw-away project."""

    airflow_url: str
    mlflow_url: str
    user: str
    password: str
    project: Path
    airflow_home: Path
    env: dict[str, str]
    proc: subprocess.Popen
    log: Path
    api: AirflowApi = field(init=False)

    def __post_init__(self) -> None:
        self.api = AirflowApi(self.airflow_url, self.user, self.password)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"scripts/airflow-ui.sh exited with {self.proc.returncode}\n"
                f"{_tail(self.log)}\n{self.component_logs()}"
            )

    def component_logs(self, chars: int = 2000) -> str:
        logs = self.airflow_home / "logs"
        names = ("api-server", "scheduler", "dag-processor", "triggerer", "mlflow-ui")
        return "\n".join(f"----- {n}.log (tail)\n{_tail(logs / f'{n}.log', chars)}" for n in names)

    def task_log_tails(self, dag_id: str, run_id: str, chars: int = 2500) -> str:
        """The end of each task's log of one run, read from disk (for failure messages)."""
        folder = self.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        parts = []
        for path in sorted(folder.glob("task_id=*/attempt=*.log")):
            lines = []
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                    lines.append(f"{record.get('level', '')} {record.get('event', '')}")
                except ValueError:
                    lines.append(line)
            parts.append(f"----- {path.parent.name}\n" + "\n".join(lines)[-chars:])
        return "\n".join(parts) or f"(no task logs under {folder})"


def _script_env(
    project: Path, home: Path, airflow_port: int, mlflow_port: int, password: str
) -> dict[str, str]:
    # What the script is told; inherited Airflow/MLflow settings (other test folders set some at
    # import) must not leak into the stack it starts.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW") and k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    }
    env.update(
        {
            "AIRFLOW_PORT": str(airflow_port),
            "MLFLOW_PORT": str(mlflow_port),
            "SHOPFLOW_PROJECT_DIR": str(project),
            "AIRFLOW_HOME": str(home),
            "SHOPFLOW_AIRFLOW_PASSWORD": password,
            "SHOPFLOW_UI_START_TIMEOUT": str(UI_START_TIMEOUT_S),
            # A failed task should fail the run at once, not after minutes of back-off.
            "SHOPFLOW_RETRIES": "0",
            # The scheduler's and triggerer's log servers have fixed default ports (8793/8794):
            # free ones, so that this test and someone's scripts/airflow-ui.sh can run together.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
    )
    return env


def _session_members(sid: int) -> list[int]:
    """PIDs in session ``sid`` (the script runs as a session leader) and their descendants."""
    parents: dict[int, int] = {}
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid, ppid, session = int(stat.parent.name), int(fields[1]), int(fields[3])
            parents[pid] = ppid
            if session == sid:
                members.add(pid)
    grew = True
    while grew:  # children that started a session of their own
        more = {pid for pid, ppid in parents.items() if ppid in members and pid not in members}
        members |= more
        grew = bool(more)
    return sorted(members)


def stop_stack(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM the script's process group (what Ctrl-C does, by TERM: the script's trap stops
    its children), wait up to ``timeout``; then SIGKILL whatever of it is left. Returns a note."""
    if proc.poll() is not None and not _session_members(proc.pid):
        return "already stopped"
    t0 = time.time()
    leftovers = _session_members(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = t0 + timeout
    while time.time() < deadline:
        alive = [pid for pid in leftovers if Path(f"/proc/{pid}").exists()]
        alive = [pid for pid in alive if not _is_zombie(pid)]
        if proc.poll() is not None and not alive:
            return f"stopped in {time.time() - t0:.1f}s"
        time.sleep(0.5)
    killed = {p for p in _session_members(proc.pid) + leftovers if Path(f"/proc/{p}").exists()}
    for pid in sorted(killed):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    return f"not stopped after {timeout}s: SIGKILLed {len(killed)} processes"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _wait_for_urls(proc: subprocess.Popen, log: Path, timeout: float) -> dict[str, str]:
    """The URLs the script prints once each answers ("MLflow UI:  http://..." etc.)."""
    deadline = time.time() + timeout
    found: dict[str, str] = {}
    while time.time() < deadline:
        text = log.read_text(errors="replace") if log.is_file() else ""
        for name, url in re.findall(r"^(Airflow|MLflow) UI:\s+(http://\S+)", text, re.M):
            found[name] = url
        if len(found) == 2:
            return found
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(
        f"scripts/airflow-ui.sh printed {found or 'no URL'} "
        f"(exit code {proc.poll()}); its output:\n{_tail(log)}"
    )


@pytest.fixture
def ui_stack(tmp_path: Path) -> Iterator[UiStack]:
    """scripts/airflow-ui.sh on free ports, a fresh AIRFLOW_HOME and a project folder holding a
    copy of the project's params.yaml (data, models, reports and mlflow.db are made there)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy2(REPO_ROOT / "params.yaml", project / "params.yaml")
    home = tmp_path / "airflow_home"
    airflow_port, mlflow_port = free_port(), free_port()
    password = "pw-" + secrets.token_hex(6)
    env = _script_env(project, home, airflow_port, mlflow_port, password)
    log = tmp_path / "airflow-ui.out"
    t0 = time.time()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(REPO_ROOT / "scripts" / "airflow-ui.sh")],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session and process group: stopped as one
        )
    stack = None
    try:
        urls = _wait_for_urls(proc, log, UI_START_TIMEOUT_S + 30)
        print(f"scripts/airflow-ui.sh: both UIs answer after {time.time() - t0:.0f}s: {urls}")
        assert urls["Airflow"] == f"http://127.0.0.1:{airflow_port}", urls
        assert urls["MLflow"] == f"http://127.0.0.1:{mlflow_port}", urls
        stack = UiStack(
            airflow_url=urls["Airflow"],
            mlflow_url=urls["MLflow"],
            user="admin",
            password=password,
            project=project,
            airflow_home=home,
            env=env,
            proc=proc,
            log=log,
        )
        stack.api.login()
        yield stack
    finally:
        note = stop_stack(proc)
        print(f"scripts/airflow-ui.sh {note}")
        if stack is None or proc.returncode not in (0, 130, 143, -signal.SIGTERM, -signal.SIGKILL):
            print(f"----- scripts/airflow-ui.sh output\n{_tail(log)}")
            for name in ("mlflow-ui", "api-server", "scheduler", "dag-processor", "triggerer"):
                print(f"----- {name}.log (tail)\n{_tail(home / 'logs' / f'{name}.log', 2000)}")


# ----------------------------------------------------------------------------- Params from dags/

_PARAMS_SCRIPT = r"""
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.1
    from airflow.models.dagbag import DagBag
bag = DagBag(sys.argv[1])
if bag.import_errors:
    sys.exit(f"import errors in {sys.argv[1]}: {bag.import_errors}")
out = {}
for dag_id, dag in bag.dags.items():
    out[dag_id] = {
        key: {"schema": dag.params.get_param(key).schema,
              "description": dag.params.get_param(key).description}
        for key in dag.params
    }
print("PARAMS_JSON=" + json.dumps(out, default=str))
"""


@pytest.fixture
def dag_params(tmp_path: Path) -> Iterator[Any]:
    """The Params of the DAGs in dags/, as the DAG files define them, from a DagBag parsed in a
    subprocess with its own AIRFLOW_HOME: ``dag_params()[dag_id] == {key: {"schema": ...,
    "description": ...}}``. The parse starts when the fixture is set up (request it before
    ui_stack: both then start together); calling the value waits for it."""
    folder = tmp_path / "dagbag"
    folder.mkdir()
    shutil.copy2(REPO_ROOT / "params.yaml", folder / "params.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(folder / "airflow_home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "SHOPFLOW_PROJECT_DIR": str(folder),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARAMS_SCRIPT, str(REPO_ROOT / "dags")],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parsed: dict[str, Any] = {}

    def result() -> dict[str, dict[str, Any]]:
        if not parsed:
            out, err = proc.communicate(timeout=300)
            match = re.search(r"^PARAMS_JSON=(.*)$", out, re.M)
            assert proc.returncode == 0 and match, (
                f"parsing dags/ failed ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}"
            )
            parsed.update(json.loads(match.group(1)))
        return parsed

    try:
        yield result
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- the browser


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # for the fixtures' teardown: did it fail?
    return report


class Shots:
    """Numbered screenshots under test-output/browser/."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.n = 0

    def take(self, page: Any, name: str, full_page: bool = False) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}-{name}.png"
        try:
            page.screenshot(path=str(path), full_page=full_page)
        except Exception as exc:  # a screenshot must never hide the real failure
            print(f"screenshot {path.name} failed: {exc}")
        return path


@pytest.fixture
def browser_context(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Shots]]:
    """A headless Debian chromium (playwright, sync API) and a screenshot helper. Missing
    chromium or playwright fails the test."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL_HINT}", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed in {sys.prefix}: {INSTALL_HINT}", pytrace=False)
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    for old in SHOTS_DIR.glob("*.png"):
        old.unlink()
    shots = Shots(SHOTS_DIR)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)
        try:
            yield context, shots
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                for i, page in enumerate(context.pages):
                    path = shots.take(page, f"FAILED-page{i}", full_page=True)
                    print(f"failure screenshot: {path} ({page.url})")
            context.close()
            browser.close()
