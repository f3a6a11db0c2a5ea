"""`python -m ml.demo` (``make demo``): two retraining cycles of the shop, through Airflow.

Everything runs on the embedded default: SQLite Airflow metadata in ./airflow_home, MLflow in
./mlflow.db, DVC's local remote, the synthetic shop and the shipped MiniLM. The DAGs run with
``dag.test()`` (in-process, no scheduler), exactly the task code a scheduler would run.

Cycle 1: three shop days are ingested and validated; both models are trained, evaluated,
gated (first run: value thresholds only) and promoted.
Cycle 2: a drifted fourth day arrives (shop_ingest); drift_monitor compares it with what each
champion was trained on and flags retraining; both retrain DAGs run again, so a challenger
meets a champion in the offline A/B gate; the registry status is printed at the end.

Small-but-real settings keep it well under 15 minutes on 2 CPU cores: one intent epoch on a
sample, a few recommender epochs (``DEMO_CONF``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("intent", "recommender")

# Trigger-form values per family (validated against the DAG's Params like a UI trigger).
DEMO_CONF: dict[str, dict[str, Any]] = {
    "intent": {"epochs": 1, "sample_size": 600},
    "recommender": {"epochs": 2},
}
SHARED_OVERRIDES = ["gate.bootstrap_resamples=1000"]
# The fourth day: customers ask differently and shop other categories; 20 products launch.
# Mild enough to pass validation (label shift within the gate's tolerance), strong enough to
# pass the drift thresholds.
DRIFT_DAY = 3
DRIFT_OVERRIDES = [
    "generator.drift.strength=0.25",
    f"generator.drift.start_day={DRIFT_DAY}",
    "generator.drift.new_items=20",
]


def _banner(text: str) -> None:
    print(f"\n{'=' * 78}\n{text}\n{'=' * 78}", flush=True)


def configure_environment(project: Path) -> dict[str, str]:
    """Airflow, MLflow and HF settings for an embedded run; set before Airflow is imported."""
    env = {
        "AIRFLOW_HOME": str(project / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "SHOPFLOW_PROJECT_DIR": str(project),
        # In a demo a failure should show at once, not after minutes of back-off.
        "SHOPFLOW_RETRIES": "0",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    }
    if (project / ".dvc").is_dir():
        # Preprocessing through `dvc repro`, so dvc.lock and the cache record each version.
        env["SHOPFLOW_PREPROCESS_MODE"] = "dvc"
    os.environ.update(env)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return env


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def prepare_airflow() -> None:
    """Create/upgrade the SQLite metadata database and the `dvc` pool (size 1)."""
    t0 = time.time()
    subprocess.run([_bin("airflow"), "db", "migrate"], check=True, capture_output=True)
    subprocess.run(
        [_bin("airflow"), "pools", "set", "dvc", "1", "workspace: ingest, validate, preprocess"],
        check=True,
        capture_output=True,
    )
    print(f"Airflow metadata ready in {time.time() - t0:.0f}s ({os.environ['AIRFLOW_HOME']})")


def run_dag(dag: Any, conf: dict[str, Any]) -> Any:
    """One DAG run via dag.test(); raises when the run fails."""
    t0 = time.time()
    print(f"\n--> {dag.dag_id} {json.dumps(conf)}", flush=True)
    dag_run = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    print(f"    {dag.dag_id}: {dag_run.state} in {time.time() - t0:.0f}s  {states}")
    if str(dag_run.state) != "success":
        raise SystemExit(f"{dag.dag_id} failed: {states} (see the task logs above)")
    return dag_run


def _ledger(project: Path, dag_run: Any) -> Any:
    from ml.orchestration import StepLedger

    return StepLedger(project / "reports", dag_run.dag_id, dag_run.run_id)


def report_retrain(project: Path, dag_run: Any) -> dict[str, Any]:
    """Print what a retrain run validated, trained, compared and promoted."""
    from ml.orchestration import format_summary

    ledger = _ledger(project, dag_run)
    for dataset, result in (ledger.get("validate") or {}).items():
        counts = result.get("counts", {})
        print(
            f"    validated {dataset}: {counts.get('accepted', 0)} accepted, "
            f"{counts.get('quarantined', 0)} quarantined, {counts.get('skipped', 0)} unchanged"
        )
    train = ledger.get("train") or {}
    took = f" in {float(train['train_seconds']):.0f}s" if "train_seconds" in train else ""
    print(f"    trained{took} on {train.get('trained_on')}")
    summary = ledger.get("summary") or {}
    print("    " + format_summary(summary).replace("\n", "\n    "))
    return summary


def retrain_conf(family: str, extra: list[str], first_day: int | None, days: int | None) -> dict:
    conf: dict[str, Any] = dict(DEMO_CONF[family])
    conf["overrides"] = [*SHARED_OVERRIDES, *extra]
    if first_day is not None:
        conf["first_day"], conf["days"] = first_day, days
    return conf


def registry_status(project: Path) -> None:
    from ml.cli import run_step

    cwd = os.getcwd()
    os.chdir(project)
    try:
        for family in FAMILIES:
            print(f"\n$ python -m ml registry status {family}")
            print(json.dumps(run_step(["registry", "status", family]), indent=2, default=str))
    finally:
        os.chdir(cwd)


def run_demo(project: Path, *, families: tuple[str, ...] = FAMILIES) -> dict[str, Any]:
    configure_environment(project)
    prepare_airflow()
    from ml.orchestration import (
        build_drift_monitor_dag,
        build_retrain_dag,
        build_shop_ingest_dag,
    )

    t0 = time.time()
    results: dict[str, Any] = {"cycle1": {}, "cycle2": {}}
    _banner("Cycle 1: three shop days -> validate -> train -> evaluate -> gate -> promote")
    for family in families:
        run = run_dag(build_retrain_dag(family), retrain_conf(family, [], None, None))
        results["cycle1"][family] = report_retrain(project, run)

    _banner(
        f"Cycle 2: day {DRIFT_DAY} arrives, drifted; the monitor compares it with the champions"
    )
    run_dag(
        build_shop_ingest_dag(),
        {"first_day": DRIFT_DAY, "days": 1, "overrides": DRIFT_OVERRIDES},
    )
    monitor = run_dag(build_drift_monitor_dag(), {"sample": 400, "overrides": DRIFT_OVERRIDES})
    flagged = []
    for family in families:
        report = project / "reports" / "drift" / f"{family}.json"
        drift = json.loads(report.read_text()) if report.is_file() else {}
        print(f"    drift {family}: {drift.get('exceeded') or drift.get('note') or 'none'}")
        ti = monitor.get_task_instance(f"flag_{family}")
        if ti is not None and str(ti.state) == "success":
            flagged.append(family)
    results["drift_flagged"] = flagged
    # The scheduler would start these from the drift assets; dag.test() has no scheduler.
    for family in families:
        conf = retrain_conf(family, DRIFT_OVERRIDES, DRIFT_DAY, 1)
        run = run_dag(build_retrain_dag(family), conf)
        results["cycle2"][family] = report_retrain(project, run)

    _banner("Registry")
    registry_status(project)
    results["seconds"] = round(time.time() - t0)
    print(f"\nDemo finished in {results['seconds']}s. Browse it: scripts/airflow-ui.sh")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.demo", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=REPO_ROOT,
        help="where data/, models/, reports/, mlflow.db and airflow_home/ go (%(default)s)",
    )
    parser.add_argument("--only", choices=FAMILIES, help="run one model family (default: both)")
    args = parser.parse_args(argv)
    project = args.project_dir.resolve()
    if not (project / "params.yaml").is_file():
        print(f"error: {project}/params.yaml not found", file=sys.stderr)
        return 2
    families = (args.only,) if args.only else FAMILIES
    run_demo(project, families=families)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
