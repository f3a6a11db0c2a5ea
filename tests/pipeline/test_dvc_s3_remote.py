"""DVC on S3 (a moto server standing in for AWS/MinIO): push, lose the workspace, pull back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dvc import digest_tree

pytestmark = pytest.mark.services


def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture
def dvc_project(tmp_path: Path, s3_endpoint: str) -> tuple[Path, dict[str, str]]:
    """A DVC repo whose default remote is a bucket on the moto server (credentials in env)."""
    import boto3

    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket="shopflow-dvc")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    project = tmp_path / "project"
    project.mkdir()
    for args in (
        ("git", "init", "-q"),
        ("dvc", "init", "-q"),
        ("dvc", "remote", "add", "--local", "--default", "s3", "s3://shopflow-dvc/shopflow"),
        ("dvc", "remote", "modify", "--local", "s3", "endpointurl", s3_endpoint),
    ):
        done = run(project, env, *args)
        assert done.returncode == 0, done.stderr
    return project, env


def test_push_then_pull_restores_a_deleted_workspace_byte_for_byte(
    dvc_project: tuple[Path, dict[str, str]],
) -> None:
    from ml.core.config.data import GeneratorConfig
    from ml.data.synthetic import generate_world

    project, env = dvc_project
    generate_world(
        GeneratorConfig(n_items=60, n_users=40, utterances_per_day=200, days=2),
        project / "data" / "landing",
    )
    before = digest_tree(project / "data" / "landing")
    assert len(before) == 6
    assert run(project, env, "dvc", "add", "data/landing").returncode == 0
    pushed = run(project, env, "dvc", "push")
    assert pushed.returncode == 0, pushed.stderr
    # The workspace and the local cache are gone: only the S3 remote has the data now.
    shutil.rmtree(project / "data" / "landing")
    shutil.rmtree(project / ".dvc" / "cache")
    pulled = run(project, env, "dvc", "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert digest_tree(project / "data" / "landing") == before


def test_an_unwritable_remote_fails_the_push_with_its_name(
    dvc_project: tuple[Path, dict[str, str]], s3_endpoint: str
) -> None:
    project, env = dvc_project
    (project / "data.txt").write_text("x")
    assert run(project, env, "dvc", "add", "data.txt").returncode == 0
    # moto accepts any key, so a missing bucket stands in for a remote we may not write to.
    done = run(project, env, "dvc", "remote", "modify", "--local", "s3", "url", "s3://absent/x")
    assert done.returncode == 0
    failed = run(project, env, "dvc", "push")
    assert failed.returncode != 0
    assert "absent" in failed.stderr or "bucket" in failed.stderr.lower(), failed.stderr
