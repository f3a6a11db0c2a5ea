"""The two callers agree on what is up to date: after the retrain DAG ran a train/evaluate step
itself, dvc.lock records it (unless the run's overrides changed what the stage declares); and a
first run's pull of a version nobody pushed says nothing alarming."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ml.stack.data_versions import DataSyncError, pull_stage, record_stages
from tests.support.dvc import (
    INTENT_OUT,
    INTENT_STAGE,
    dvc,
    dvc_status,
    init_intent_dvc_project,
    land_validated_days,
)

STAGES = ["train_intent", "evaluate_intent"]


@pytest.fixture
def reproduced(tmp_path: Path) -> Path:
    """A git + DVC project whose train/evaluate stages were reproduced once (shell commands
    stand in for the model: only what DVC records matters here)."""
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    dvc(project, "init", "-q")
    params = {"seed": 42, "intent": {"train": {"epochs": 1}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    stages = {
        "train_intent": {
            "cmd": "mkdir -p models/intent && echo v1 > models/intent/weights.txt",
            "deps": ["data/processed/intent"],
            "params": ["intent", "seed"],
            "outs": [{"models/intent": {"persist": True, "cache": False}}],
        },
        "evaluate_intent": {
            "cmd": "mkdir -p reports/intent && echo p1 > reports/intent/predictions.parquet "
            "&& echo '{}' > reports/intent/metrics.json",
            "deps": ["models/intent", "data/processed/intent"],
            "params": ["intent", "seed"],
            "metrics": [{"reports/intent/metrics.json": {"cache": False}}],
            "outs": ["reports/intent/predictions.parquet"],
        },
    }
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (project / "data/processed/intent").mkdir(parents=True)
    (project / "data/processed/intent/train.parquet").write_text("rows")
    dvc(project, "repro")
    return project


def retrain_outside_dvc(project: Path) -> None:
    """What the DAG's train and evaluate tasks leave: new outputs, dvc.lock untouched."""
    (project / "models/intent/weights.txt").write_text("v2\n")
    (project / "reports/intent/predictions.parquet").write_text("p2\n")
    (project / "reports/intent/gate.json").write_text("{}")  # the gate's files are not outs


def test_a_run_with_params_yaml_values_is_recorded_and_dvc_repro_skips_it(
    reproduced: Path,
) -> None:
    retrain_outside_dvc(reproduced)
    assert set(dvc_status(reproduced, *STAGES)) == set(STAGES)
    # An override of a param the stages do not declare changes nothing they compute.
    result = record_stages(
        reproduced, [*STAGES, "train_other"], overrides=["gate.bootstrap_resamples=1000"]
    )
    assert result["recorded"] == STAGES and result["not_in_dvc_yaml"] == ["train_other"]
    assert dvc_status(reproduced, *STAGES) == {}
    assert "didn't change" in dvc(reproduced, "repro")
    assert (reproduced / "models/intent/weights.txt").read_text() == "v2\n"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["intent.train.epochs=3"], "intent.train.epochs"),
        (["seed=7"], "seed"),
        (["paths.models=elsewhere"], "paths.models"),
    ],
)
def test_a_run_with_overrides_of_declared_params_stays_out_of_date(
    reproduced: Path, overrides: list[str], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    retrain_outside_dvc(reproduced)
    lock_before = (reproduced / "dvc.lock").read_text()
    with caplog.at_level(logging.INFO, logger="ml.stack.data_versions"):
        result = record_stages(reproduced, STAGES, overrides=overrides)
    assert result["recorded"] == []
    line = result["out_of_date"]
    assert "\n" not in line and named in line and "train_intent, evaluate_intent" in line
    assert line in caplog.text
    assert (reproduced / "dvc.lock").read_text() == lock_before
    assert set(dvc_status(reproduced, *STAGES)) == set(STAGES)


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The intent preprocess stage reproduced once, never pushed (a local-folder remote)."""
    root = tmp_path_factory.mktemp("pull")
    project = init_intent_dvc_project(root / "project", str(root / "remote"))
    land_validated_days(project, 0, 1)
    dvc(project, "repro", "--single-item", INTENT_STAGE)
    return project


@pytest.fixture
def unpushed(preprocessed: Path, tmp_path: Path) -> Path:
    """A fresh clone of it: dvc.lock names outputs that are on no remote and not in the cache."""
    project = Path(shutil.copytree(preprocessed, tmp_path / "project", symlinks=True))
    shutil.rmtree(project / INTENT_OUT)
    return project


def test_first_pull_of_a_version_nobody_pushed_prints_no_error(
    unpushed: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    project = unpushed
    shutil.rmtree(project / ".dvc" / "cache")
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        pulled = pull_stage(project, INTENT_STAGE)
    out, err = capfd.readouterr()
    assert pulled["restored"] == [] and pulled["not_on_remote"] == [str(INTENT_OUT)]
    assert "ERROR" not in out + err + caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Running stage" in dvc(project, "repro", "--single-item", INTENT_STAGE)


def test_a_real_checkout_failure_still_fails_with_dvcs_message(unpushed: Path) -> None:
    project = unpushed
    # A partial version: the folder's listing is in the cache, one of its files is not.
    cached = [p for p in (project / ".dvc" / "cache").rglob("*") if p.is_file()]
    next(p for p in cached if not p.name.endswith(".dir") and "runs" not in p.parts).unlink()
    with pytest.raises(DataSyncError, match="Checkout failed") as failed:
        pull_stage(project, INTENT_STAGE)
    assert failed.value.exit_code == 8


def test_a_version_in_the_cache_is_checked_out(unpushed: Path) -> None:
    pulled = pull_stage(unpushed, INTENT_STAGE)
    assert pulled["restored"] == [str(INTENT_OUT)] and "not_on_remote" not in pulled
    assert (unpushed / INTENT_OUT / "train.parquet").is_file()
