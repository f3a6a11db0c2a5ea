"""A retrain DAG in DVC mode syncs with an S3 remote (moto): every trained version's data can
be pulled back byte for byte from the version's tag."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.dvc import INTENT_OUT, digest_tree, dvc, dvc_status, init_intent_dvc_project
from tests.support.services import use_dummy_s3_keys

pytestmark = pytest.mark.services

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESSED = INTENT_OUT
RECORDED = ("train_intent", "evaluate_intent")


@pytest.fixture
def dvc_project(tiny_project: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tiny_project as a git + DVC repo with the intent preprocess stage and an S3 remote."""
    import boto3

    use_dummy_s3_keys(monkeypatch)
    bucket = "dvc-retrain-dag"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    prefix = f"s3://{bucket}/{tiny_project.parent.name}"
    init_intent_dvc_project(tiny_project, prefix, s3_endpoint)
    # The real train/evaluate stages, less their code deps (the code is not in this project).
    real = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    document = yaml.safe_load((tiny_project / "dvc.yaml").read_text(encoding="utf-8"))
    for stage in RECORDED:
        spec = dict(real[stage])
        spec["deps"] = [d for d in spec["deps"] if not str(d).startswith(("ml/", "expectations/"))]
        document["stages"][stage] = spec
    (tiny_project / "dvc.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return tiny_project


def test_retrain_in_dvc_mode_pushes_and_tags_the_data_version(
    dvc_project: Path, airflow_db: Path
) -> None:
    from ml.cli import run_step
    from ml.orchestration.dags import build_retrain_dag
    from ml.orchestration.settings import OrchestrationSettings
    from ml.stack.data_versions import DATA_VERSION_TAG

    settings = OrchestrationSettings(project_dir=dvc_project, retries=0, preprocess_mode="dvc")
    run = build_retrain_dag("intent", settings).test(run_conf={})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    assert states["pull_data"] == "success" and states["push_data"] == "success"
    # The run trained and evaluated with params.yaml's values: dvc.lock says so, and
    # `dvc repro` would not redo them.
    assert states["record_dvc_lock"] == "success"
    assert dvc_status(dvc_project, *RECORDED) == {}
    trained_on = digest_tree(dvc_project / PROCESSED)
    from ml.orchestration.runtime import StepLedger
    from ml.orchestration.summary import format_summary

    summary = StepLedger(dvc_project / "reports", run.dag_id, run.run_id).get("summary") or {}
    assert summary["data_version"]["remote"] == "s3"
    assert f"data: {PROCESSED} (" in format_summary(summary)

    cwd = os.getcwd()
    os.chdir(dvc_project)
    try:
        from ml.core.config import load_params
        from ml.stack import model_store

        params = load_params("params.yaml")
        version = model_store.get_client(params).get_model_version("intent-classifier", "1")
        lock = json.loads(version.tags[DATA_VERSION_TAG])
        assert lock["outs"][0]["path"] == str(PROCESSED)

        # Lose the workspace's data and cache: the version's tag + the remote bring it back.
        shutil.rmtree(dvc_project / PROCESSED)
        shutil.rmtree(dvc_project / ".dvc" / "cache")
        restored = run_step(["restore-data", "intent", "--version", "1"])
    finally:
        os.chdir(cwd)
    assert restored["restored"] == [str(PROCESSED)]
    assert digest_tree(dvc_project / PROCESSED) == trained_on


@pytest.mark.parametrize("family", ["intent", "recommender"])
def test_sync_tasks_wrap_preprocess_and_training_only_in_dvc_mode(
    tmp_path: Path, family: str
) -> None:
    from ml.orchestration.dags import build_retrain_dag
    from ml.orchestration.settings import OrchestrationSettings

    dvc_mode = build_retrain_dag(
        family, OrchestrationSettings(project_dir=REPO_ROOT, preprocess_mode="dvc")
    )
    chain = ["validate", "pull_data", "preprocess", "train", "push_data", "evaluate"]
    for upstream, downstream in itertools.pairwise(chain):
        assert dvc_mode.get_task(downstream).upstream_task_ids == {upstream}, downstream
    assert dvc_mode.get_task("record_dvc_lock").upstream_task_ids == {"evaluate"}
    for task_id in ("pull_data", "push_data", "record_dvc_lock"):
        assert dvc_mode.get_task(task_id).pool == "dvc"  # DVC locks its repo: one at a time

    for settings in (
        OrchestrationSettings(project_dir=REPO_ROOT),  # step mode: nothing is versioned
        OrchestrationSettings(project_dir=REPO_ROOT, preprocess_mode="dvc", dvc_sync="off"),
    ):
        dag = build_retrain_dag(family, settings)
        assert not {"pull_data", "push_data"} & set(dag.task_ids)
        assert dag.get_task("preprocess").downstream_task_ids == {"train"}
        # Recording in dvc.lock follows the preprocess mode, not the remote sync.
        assert ("record_dvc_lock" in dag.task_ids) == (settings.preprocess_mode == "dvc")


def test_required_sync_without_a_remote_names_the_settings(tmp_path: Path) -> None:
    from ml.core.errors import ConfigError
    from ml.core.families import FAMILIES
    from ml.orchestration.settings import OrchestrationSettings
    from ml.orchestration.steps import pull_data_version

    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    dvc(project, "init", "-q")
    required = OrchestrationSettings(
        project_dir=project, preprocess_mode="dvc", dvc_sync="required"
    )
    with pytest.raises(ConfigError, match=r"SHOPFLOW_DVC_SYNC=required.*SHOPFLOW_DVC_REMOTE"):
        pull_data_version(FAMILIES["intent"], required)
    auto = required.model_copy(update={"dvc_sync": "auto"})
    assert pull_data_version(FAMILIES["intent"], auto)["remote"] is None
