"""Data versions on an S3 DVC remote (moto): pull before preprocessing, push after, restore."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml.core.errors import ConfigError
from ml.stack.data_versions import (
    DataSyncError,
    pull_stage,
    push_stage,
    resolve_remote,
    restore_stage,
)
from tests.support.dvc import (
    INTENT_OUT,
    INTENT_STAGE,
    digest_tree,
    dvc,
    init_intent_dvc_project,
    land_validated_days,
)
from tests.support.services import use_dummy_s3_keys

pytestmark = pytest.mark.services

STAGE = INTENT_STAGE
OUT = INTENT_OUT


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    use_dummy_s3_keys(monkeypatch)


@pytest.fixture
def project(tmp_path: Path, s3_endpoint: str, s3_credentials: None) -> Iterator[Path]:
    """A git + DVC repo with the intent preprocess stage and an S3 default remote on moto."""
    import boto3

    bucket = f"dvc-{tmp_path.name.lower().replace('_', '-')}"[:60]
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    root = init_intent_dvc_project(tmp_path / "project", f"s3://{bucket}/shopflow", s3_endpoint)
    yield root


def test_each_pushed_version_is_restored_byte_for_byte_from_the_remote(project: Path) -> None:
    # Version 1: two days of data.
    land_validated_days(project, 0, 2)
    assert pull_stage(project, STAGE)["restored"] == []  # first run: nothing recorded yet
    dvc(project, "repro", "--single-item", STAGE)
    first = push_stage(project, STAGE)
    assert first["remote"] == "s3"
    v1 = digest_tree(project / OUT)
    assert {"train.parquet", "val.parquet", "test.parquet"} <= set(v1)

    # Version 2: a third day arrives; the processed data changes.
    land_validated_days(project, 2, 1)
    pull_stage(project, STAGE)
    dvc(project, "repro", "--single-item", STAGE)
    second = push_stage(project, STAGE)
    v2 = digest_tree(project / OUT)
    assert v2 != v1
    assert first["lock"]["outs"][0]["md5"] != second["lock"]["outs"][0]["md5"]

    # Only the remote has the data now.
    shutil.rmtree(project / OUT)
    shutil.rmtree(project / ".dvc" / "cache")
    restore_stage(project, STAGE, first["lock"])
    assert digest_tree(project / OUT) == v1
    restore_stage(project, STAGE, second["lock"])
    assert digest_tree(project / OUT) == v2
    assert "didn't change" in dvc(project, "repro", "--single-item", STAGE)


def test_pull_restores_missing_outputs_on_a_fresh_worker_and_keeps_changed_ones(
    project: Path,
) -> None:
    land_validated_days(project, 0, 1)
    dvc(project, "repro", "--single-item", STAGE)
    push_stage(project, STAGE)
    pushed = digest_tree(project / OUT)

    # A fresh worker: same checkout and dvc.lock, empty workspace data and cache.
    shutil.rmtree(project / OUT)
    shutil.rmtree(project / ".dvc" / "cache")
    assert pull_stage(project, STAGE)["restored"] == [str(OUT)]
    assert digest_tree(project / OUT) == pushed

    # A workspace output that differs from dvc.lock is never overwritten by the pull.
    (project / OUT / "label_map.json").write_text("{}")
    assert pull_stage(project, STAGE)["restored"] == []
    assert (project / OUT / "label_map.json").read_text() == "{}"


def test_pull_of_a_version_nobody_pushed_leaves_it_to_preprocessing(project: Path) -> None:
    # A fresh clone: dvc.lock (from git) names outputs that were never pushed anywhere.
    land_validated_days(project, 0, 1)
    dvc(project, "repro", "--single-item", STAGE)
    shutil.rmtree(project / OUT)
    shutil.rmtree(project / ".dvc" / "cache")
    pulled = pull_stage(project, STAGE)
    assert pulled["restored"] == [] and pulled["not_on_remote"] == [str(OUT)]
    assert "Running stage" in dvc(project, "repro", "--single-item", STAGE)
    assert (project / OUT / "train.parquet").is_file()


def test_remote_errors_name_the_setting_or_the_remote(project: Path) -> None:
    with pytest.raises(ConfigError, match="SHOPFLOW_DVC_REMOTE"):
        resolve_remote(project, "nowhere")
    land_validated_days(project, 0, 1)
    dvc(project, "repro", "--single-item", STAGE)
    dvc(project, "remote", "modify", "--local", "s3", "url", "s3://no-such-bucket/x")
    with pytest.raises(DataSyncError, match="dvc push --remote s3") as failed:
        push_stage(project, STAGE)
    assert "no-such-bucket" in str(failed.value) or "bucket" in str(failed.value).lower()
