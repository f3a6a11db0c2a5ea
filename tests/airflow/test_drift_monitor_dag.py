"""The drift_monitor DAG with ``dag.test()``: no flag on same-distribution data; on drifted
data it flags the family, emitting the asset event that schedules the retrain DAG."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ml.cli import run_step


def _generate(project: Path, first_day: int, days: int, extra: list[str]) -> None:
    cwd = os.getcwd()
    os.chdir(project)
    try:
        argv = ["generate", "--first-day", str(first_day), "--days", str(days)]
        for entry in extra:
            argv += ["--set", entry]
        run_step(argv)
    finally:
        os.chdir(cwd)


def _monitor(project: Path, model: Path) -> Any:
    from ml.orchestration.dags import build_drift_monitor_dag
    from ml.orchestration.settings import OrchestrationSettings

    dag = build_drift_monitor_dag(OrchestrationSettings(project_dir=project))
    return dag.test(run_conf={"model_path": str(model), "sample": 150})


def _states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def _drift_events(family: str) -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AssetEvent)
                .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(AssetModel.uri == f"shopflow://drift/{family}")
            )
            or 0
        )


def test_monitor_flags_only_drifted_data(
    tiny_project: Path, tiny_bert_dir: Path, airflow_db: Path
) -> None:
    _generate(tiny_project, 0, 3, [])
    shutil.copytree(tiny_project / "data" / "landing", tiny_project / "data" / "validated")
    _generate(tiny_project, 3, 1, [])  # a fourth ordinary day
    before = {f: _drift_events(f) for f in ("intent", "recommender")}

    calm = _monitor(tiny_project, tiny_bert_dir)
    states = _states(calm)
    assert str(calm.state) == "success", states
    for family in ("intent", "recommender"):
        assert states[f"no_drift_{family}"] == "success", states
        assert states[f"flag_{family}"] == "skipped", states
        assert _drift_events(family) == before[family]

    # The fourth day again, now with customers' habits and the catalogue shifted.
    _generate(
        tiny_project,
        3,
        1,
        [
            "generator.drift.strength=0.8",
            "generator.drift.start_day=3",
            "generator.drift.new_items=15",
        ],
    )
    stormy = _monitor(tiny_project, tiny_bert_dir)
    states = _states(stormy)
    assert str(stormy.state) == "success", states
    for family in ("intent", "recommender"):
        assert states[f"flag_{family}"] == "success", states
        assert states[f"no_drift_{family}"] == "skipped", states
        assert _drift_events(family) == before[family] + 1
