"""The demo's settings are valid for the DAGs and params.yaml (the full demo is `make demo`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ml.core.config import load_params
from ml.core.families import FAMILIES
from ml.orchestration import demo
from ml.orchestration.params import conf_overrides, form_params, retrain_fields


@pytest.mark.parametrize("family", demo.FAMILIES)
@pytest.mark.parametrize("cycle", [1, 2, 3])
def test_demo_conf_passes_the_trigger_form(family: str, cycle: int, repo_root: Path) -> None:
    extra = demo.DRIFT_OVERRIDES if cycle > 1 else []
    base = demo.WEAK_CONF if cycle == 3 else demo.DEMO_CONF
    first = demo.DRIFT_DAY if cycle == 2 else None
    conf = demo.retrain_conf(family, extra, first, demo.DRIFT_DAYS if first else None, base)
    fields = retrain_fields(FAMILIES[family])
    params = form_params(fields)
    resolved = {key: params[key].resolve(value=value) for key, value in conf.items()}
    assert resolved == conf
    # ...and what it overrides is a valid params.yaml.
    load_params(repo_root / "params.yaml", conf_overrides(fields, conf, repo_root))


def test_demo_environment_is_embedded(tmp_path: Path) -> None:
    saved = dict(os.environ)
    os.environ["MLFLOW_TRACKING_URI"] = "http://elsewhere:5000"
    os.environ.pop("SHOPFLOW_PREPROCESS_MODE", None)
    try:
        env = demo.configure_environment(tmp_path)
        assert os.environ["AIRFLOW_HOME"] == env["AIRFLOW_HOME"] == str(tmp_path / "airflow_home")
        assert env["SHOPFLOW_PROJECT_DIR"] == str(tmp_path)
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(demo.REPO_ROOT / "dags")
        assert "SHOPFLOW_PREPROCESS_MODE" not in env  # not a DVC project
        assert "MLFLOW_TRACKING_URI" not in os.environ  # the local sqlite store
        (tmp_path / ".dvc").mkdir()
        assert demo.configure_environment(tmp_path)["SHOPFLOW_PREPROCESS_MODE"] == "dvc"
    finally:
        # configure_environment writes os.environ for the whole process: restore it all.
        os.environ.clear()
        os.environ.update(saved)
