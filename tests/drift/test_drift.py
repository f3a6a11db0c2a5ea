"""Drift monitor: statistics, partition selection, and the decision on synthetic shop days."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.core.config import load_params
from ml.monitoring import drift

SMALL = [
    "generator.n_items=80",
    "generator.n_categories=6",
    "generator.n_users=80",
    "generator.utterances_per_day=300",
]


def test_statistics() -> None:
    p = pd.Series({"a": 0.5, "b": 0.5})
    assert drift.total_variation(p, p) == 0.0
    assert drift.total_variation(p, pd.Series({"c": 1.0})) == pytest.approx(1.0)
    assert drift.total_variation(p, pd.Series({"a": 1.0})) == pytest.approx(0.5)
    a = np.arange(100.0)
    assert drift.ks_statistic(a, a) == 0.0
    assert drift.ks_statistic(a, a + 1000) == pytest.approx(1.0)
    vecs = np.eye(3)
    assert drift.centroid_cosine_distance(vecs, vecs) == pytest.approx(0.0)
    assert drift.centroid_cosine_distance(vecs[:1], vecs[1:2]) == pytest.approx(1.0)


def _dates(root: Path, ds: str, dates: list[str]) -> None:
    for d in dates:
        (root / ds / f"date={d}").mkdir(parents=True)


def test_selection_uses_the_champions_training_dates(tmp_path: Path) -> None:
    params = load_params(
        tmp_path / "none.yaml",
        [f"paths.landing={tmp_path}/landing", f"paths.validated={tmp_path}/validated"],
    )
    days = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    _dates(tmp_path / "landing", "utterances", days)
    _dates(tmp_path / "validated", "utterances", days[:3])
    # The champion saw the first two days: day 3 (validated) and day 4 (landing) are new.
    chosen = drift.select_partitions(params, "intent", {"utterances": days[:2]})
    assert chosen.basis == "champion"
    assert chosen.reference == {"utterances": days[:2]}
    assert chosen.current == {"utterances": days[2:]}
    # Unknown training data: the newest day against every earlier validated day.
    chosen = drift.select_partitions(params, "intent", None, recent_days=1)
    assert chosen.reference == {"utterances": days[:3]}
    assert chosen.current == {"utterances": days[3:]}
    # A champion trained on everything: nothing new, nothing to compare.
    chosen = drift.select_partitions(params, "intent", {"utterances": days})
    assert chosen.current == {"utterances": []}


@pytest.fixture(scope="module")
def shop_days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three reference days (landing + validated) and a fourth day, once as-is, once drifted."""
    from ml.data.synthetic import generate_world

    root = tmp_path_factory.mktemp("shop")
    base = load_params(root / "none.yaml", SMALL)
    generate_world(base.generator, root / "reference", first_day=0, n_days=3)
    drifted = load_params(
        root / "none.yaml",
        [*SMALL, "generator.drift.strength=0.8", "generator.drift.start_day=3",
         "generator.drift.new_items=15"],
    )  # fmt: skip
    generate_world(base.generator, root / "same", first_day=3, n_days=1)
    generate_world(drifted.generator, root / "drifted", first_day=3, n_days=1)
    return {"reference": root / "reference", "same": root / "same", "drifted": root / "drifted"}


def make_project(project: Path, shop_days: dict[str, Path], new_day: str) -> Path:
    """landing = reference days + the new day; validated = reference days."""
    shutil.copytree(shop_days["reference"], project / "data" / "validated")
    shutil.copytree(shop_days["reference"], project / "data" / "landing")
    shutil.copytree(shop_days[new_day], project / "data" / "landing", dirs_exist_ok=True)
    return project


def _isolate(project: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Work in ``project`` with its own MLflow store; returns the override that selects it
    (absolute: MLflow caches a store per URI, a relative one would outlive the chdir)."""
    monkeypatch.chdir(project)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return f"mlflow.tracking_uri=sqlite:///{project}/mlflow.db"


def _check(project: Path, family: str, model: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    store = _isolate(project, monkeypatch)
    params = load_params(project / "none.yaml", [*SMALL, store])
    return drift.check_drift(family, params, model_path=model, sample=200)


@pytest.mark.parametrize("family", ["intent", "recommender"])
def test_same_distribution_is_not_drift(
    tmp_path: Path,
    shop_days: dict[str, Path],
    tiny_bert_dir: Path,
    family: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project(tmp_path, shop_days, "same")
    result = _check(project, family, tiny_bert_dir, monkeypatch)
    assert result["basis"] == "recent_days"  # no champion registered here
    assert result["signals"], result
    assert result["drifted"] is False, result["exceeded"]
    assert Path(result["report"]).is_file()


@pytest.mark.parametrize(
    ("family", "signal"), [("intent", "label_tv"), ("recommender", "new_item_share")]
)
def test_drifted_day_is_drift(
    tmp_path: Path,
    shop_days: dict[str, Path],
    tiny_bert_dir: Path,
    family: str,
    signal: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = make_project(tmp_path, shop_days, "drifted")
    result = _check(project, family, tiny_bert_dir, monkeypatch)
    assert result["drifted"] is True
    assert any(line.startswith(signal) for line in result["exceeded"]), result["exceeded"]


def test_cli_logs_the_check_to_mlflow(
    tmp_path: Path, shop_days: dict[str, Path], tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from ml.cli import run_step

    project = make_project(tmp_path, shop_days, "drifted")
    store = _isolate(project, monkeypatch)
    argv = ["drift", "intent", "--params", "none.yaml", "--model-path", str(tiny_bert_dir)]
    for entry in [*SMALL, store]:
        argv += ["--set", entry]
    result = run_step([*argv, "--threshold", "label_tv=0.99", "--threshold", "new_item_share=1"])
    # label_tv was raised above its value: only the other signals can still fire.
    assert not any(line.startswith("label_tv") for line in result["exceeded"])
    uri = store.split("=", 1)[1]
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(result["mlflow_run_id"])
    assert run.data.tags["drifted"] == str(result["drifted"])
    assert run.data.metrics["label_tv"] == pytest.approx(result["signals"]["label_tv"])


def test_cli_refuses_unknown_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.cli import run_step
    from ml.core.errors import ConfigError

    _isolate(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="threshold"):
        run_step(["drift", "intent", "--params", "none.yaml", "--threshold", "bogus=1"])


def test_served_traffic_from_the_prediction_log_is_compared_too(
    tmp_path: Path, shop_days: dict[str, Path], tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Landing holds a same-distribution day, but the server was asked the drifted day's
    utterances: the served_* signals see it."""
    import json

    from ml.core.prediction_log import PredictionRecord, write_partitions

    project = make_project(tmp_path, shop_days, "same")
    asked = drift.read_partitions(sorted((shop_days["drifted"] / "utterances").glob("date=*")))
    write_partitions(
        project / "data" / "predictions",
        [
            PredictionRecord(f"r{i}", "intent", "intent-classifier", "1", role,
                             json.dumps({"text": text}), json.dumps({"label": label}), 5.0)
            for i, (text, label) in enumerate(zip(asked["text"], asked["intent"], strict=True))
            for role in ("champion", "shadow")  # the shadow's rows are not what was served
        ],
    )  # fmt: skip
    result = _check(project, "intent", tiny_bert_dir, monkeypatch)
    assert result["served_rows"] == len(asked)
    assert result["signals"]["label_tv"] < 0.12 <= result["signals"]["served_label_tv"]
    assert result["drifted"] is True
    assert any(line.startswith("served_label_tv") for line in result["exceeded"])
