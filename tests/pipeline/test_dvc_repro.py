"""`dvc repro` on a copy of the repository, as a fresh clone would run it (tiny settings).

The synthetic shop injects personal data into 30% of the utterances (generator.pii_rate): raw
landing data holds it, the DVC cache (everything DVC would push) must not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml.core.config import load_params
from tests.support.dvc import fresh_copy
from tests.support.pii import injected_values, leaks

STAGES = (
    "ingest",
    "validate",
    "preprocess_intent",
    "preprocess_recsys",
    "train_intent",
    "evaluate_intent",
    "train_recommender",
    "evaluate_recommender",
)


def tiny_params(path: Path, tiny_bert: Path) -> None:
    params = yaml.safe_load(path.read_text())
    params["generator"].update(n_items=80, n_users=60, utterances_per_day=260, days=2, pii_rate=0.3)
    params["intent"]["train"].update(model_path=str(tiny_bert), epochs=1, batch_size=16)
    params["recommender"]["train"].update(text_model_path=str(tiny_bert), epochs=2, dim=16)
    params["gate"]["bootstrap_resamples"] = 1000
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.mark.timeout(1200)
def test_dvc_repro_from_a_fresh_clone_then_a_second_run_skips_everything(
    repo_root: Path, tmp_path: Path, tiny_bert_dir: Path
) -> None:
    clone = fresh_copy(repo_root, tmp_path / "clone")
    tiny_params(clone / "params.yaml", tiny_bert_dir)
    first = dvc(clone, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout, stage
    intent = json.loads((clone / "reports/intent/metrics.json").read_text())
    recsys = json.loads((clone / "reports/recommender/metrics.json").read_text())
    assert intent and recsys
    registration = json.loads((clone / "models/intent/registration.json").read_text())
    assert registration["model_name"] == "intent-classifier" and registration["version"]
    personal = injected_values(load_params(clone / "params.yaml").generator)
    assert leaks([clone / "data" / "landing"], personal), "no personal data was injected"
    cache = clone / ".dvc" / "cache"
    assert any(f.is_file() for f in cache.rglob("*")), "nothing was cached"
    assert leaks([cache], personal) == {}

    second = dvc(clone, "repro")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Running stage" not in second.stdout
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in second.stdout, stage
    status = dvc(clone, "status")
    assert "up to date" in status.stdout, status.stdout
