"""``ingest.source: s3`` against a moto S3 server: new partition files land once, a re-upload is
noticed, an unchanged one is skipped, an interrupted download leaves nothing behind, an empty
prefix is fine, and refused keys stop ``python -m ml ingest`` with exit code 7 naming the
setting."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from ml.core.config import Params
from ml.core.errors import StackError
from ml.data import s3_landing
from ml.data.ingest import ingest
from tests.support.services import dummy_s3_client, S3AuthEndpoint, use_dummy_s3_keys

pytestmark = pytest.mark.services

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "shop/landing"
UTTERANCES = "shop/landing/utterances/date=2026-11-01/part-000.csv"
UTTERANCES_2 = "shop/landing/utterances/date=2026-11-01/part-001.csv"
CATALOG = "shop/landing/catalog/date=2026-11-01/part-000.parquet"
CSV_V1 = (
    b"utterance_id,text,intent,timestamp\nU1,where is my order,track_order,2026-11-01T10:00:00Z\n"
)
CSV_V2 = CSV_V1 + b"U2,cancel it please,cancel_order,2026-11-01T11:00:00Z\n"
_AWS_SETTINGS = (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "MLFLOW_S3_ENDPOINT_URL",
    "SHOPFLOW_AWS_CONN_ID",
)


def parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"item_id": ["I1"], "price": [12.5]}).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _AWS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A fresh bucket on the shared moto server; dummy keys in the environment."""
    _isolate(monkeypatch, tmp_path)
    use_dummy_s3_keys(monkeypatch)
    name = f"landing-{uuid.uuid4().hex[:12]}"
    dummy_s3_client(s3_endpoint).create_bucket(Bucket=name)
    yield name


def make_params(root: Path, endpoint: str, bucket: str, prefix: str = PREFIX) -> Params:
    return Params.model_validate(
        {
            "paths": {name: str(root / name) for name in ("landing", "validated", "quarantine")},
            "ingest": {
                "source": "s3",
                "s3": {"bucket": bucket, "prefix": prefix, "endpoint_url": endpoint},
            },
        }
    )


def bucket_state(endpoint: str, bucket: str) -> dict[str, tuple[str, int]]:
    listed = dummy_s3_client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: (o["ETag"], o["Size"]) for o in listed}


def ledger(params: Params) -> dict[str, Any]:
    return dict(json.loads(s3_landing.ledger_path(params).read_text())["objects"])


def landed_files(landing: Path) -> list[str]:
    return sorted(str(p.relative_to(landing)) for p in landing.rglob("*") if p.is_file())


def test_a_new_partition_lands_once_and_an_unchanged_one_is_skipped(
    s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    s3 = dummy_s3_client(s3_endpoint)
    s3.put_object(Bucket=bucket, Key=UTTERANCES, Body=CSV_V1)
    s3.put_object(Bucket=bucket, Key=CATALOG, Body=parquet_bytes())
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/README.txt", Body=b"not data")
    s3.put_object(Bucket=bucket, Key="elsewhere/utterances/date=2026-11-01/part-000.csv", Body=b"x")
    params = make_params(tmp_path, s3_endpoint, bucket)
    before = bucket_state(s3_endpoint, bucket)

    assert [o.key for o in s3_landing.pending_objects(params)] == [CATALOG, UTTERANCES]
    first = ingest(params)
    landing = params.paths.landing
    assert first["new_objects"] == 2 and first["unchanged_objects"] == 0
    assert first["ignored"] == [f"{PREFIX}/README.txt"]
    assert (landing / "utterances/date=2026-11-01/part-000.csv").read_bytes() == CSV_V1
    assert (landing / "catalog/date=2026-11-01/part-000.parquet").read_bytes() == parquet_bytes()
    entries = ledger(params)
    entry = entries[f"s3://{bucket}/{UTTERANCES}"]
    assert entry["size"] == len(CSV_V1) and entry["etag"] == before[UTTERANCES][0].strip('"')
    assert entry["landed"] == "utterances/date=2026-11-01/part-000.csv"

    landed = landing / "utterances/date=2026-11-01/part-000.csv"
    stamp = landed.stat().st_mtime_ns
    second = ingest(params)
    assert second["new_objects"] == 0 and second["changed_objects"] == 0
    assert second["unchanged_objects"] == 2 and second["landed"] == []
    assert landed.stat().st_mtime_ns == stamp  # not downloaded again
    assert s3_landing.pending_objects(params) == []
    # Only read: the bucket holds exactly what was uploaded.
    assert bucket_state(s3_endpoint, bucket) == before
    assert not list(landing.glob("*.tmp")) and not (landing / s3_landing.STAGING_NAME).exists()


def test_a_reupload_with_changed_content_is_ingested_again(
    s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    s3 = dummy_s3_client(s3_endpoint)
    s3.put_object(Bucket=bucket, Key=UTTERANCES, Body=CSV_V1)
    params = make_params(tmp_path, s3_endpoint, bucket)
    ingest(params)
    old_etag = ledger(params)[f"s3://{bucket}/{UTTERANCES}"]["etag"]

    s3.put_object(Bucket=bucket, Key=UTTERANCES, Body=CSV_V2)
    assert [o.key for o in s3_landing.pending_objects(params)] == [UTTERANCES]
    result = ingest(params)
    assert result["changed_objects"] == 1 and result["new_objects"] == 0
    assert result["reuploaded"] == [UTTERANCES]
    landed = params.paths.landing / "utterances/date=2026-11-01/part-000.csv"
    assert landed.read_bytes() == CSV_V2
    entry = ledger(params)[f"s3://{bucket}/{UTTERANCES}"]
    assert entry["etag"] != old_etag and entry["size"] == len(CSV_V2)


def test_an_interrupted_download_leaves_nothing_in_landing_and_no_ledger_entry(
    s3_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ResponseStreamingError
    from botocore.response import StreamingBody

    s3 = dummy_s3_client(s3_endpoint)
    s3.put_object(Bucket=bucket, Key=UTTERANCES, Body=CSV_V1)
    s3.put_object(Bucket=bucket, Key=UTTERANCES_2, Body=CSV_V2)
    params = make_params(tmp_path, s3_endpoint, bucket)
    original = StreamingBody.iter_chunks
    calls: list[int] = []

    def cut_off(self: StreamingBody, chunk_size: int = 1024) -> Iterator[bytes]:
        """The first file of the partition downloads fine; the second breaks half-way."""
        calls.append(chunk_size)
        chunks = original(self, chunk_size)
        if len(calls) == 1:
            yield from chunks
            return
        yield next(chunks)
        raise ResponseStreamingError(error="Connection broken: simulated")

    with monkeypatch.context() as patch:
        patch.setattr(StreamingBody, "iter_chunks", cut_off)
        patch.setattr(s3_landing, "CHUNK_BYTES", 16)
        with pytest.raises(StackError, match=r"part-001\.csv"):
            ingest(params)
    assert len(calls) == 2
    landing = params.paths.landing
    assert landed_files(landing) == []  # not even the partition's complete first file
    assert not s3_landing.ledger_path(params).exists()
    # The next run (the connection is back) lands both.
    assert ingest(params)["new_objects"] == 2
    assert landed_files(landing) == [
        ".s3-ledger.json",
        "utterances/date=2026-11-01/part-000.csv",
        "utterances/date=2026-11-01/part-001.csv",
    ]


def test_an_empty_prefix_is_not_an_error(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    dummy_s3_client(s3_endpoint).put_object(Bucket=bucket, Key=f"other/{UTTERANCES}", Body=CSV_V1)
    params = make_params(tmp_path, s3_endpoint, bucket)
    assert s3_landing.pending_objects(params) == []
    result = ingest(params)
    assert result["new_objects"] == 0 and result["landed"] == [] and result["partitions"] == []
    assert result["location"] == f"s3://{bucket}/{PREFIX}"
    assert landed_files(params.paths.landing) == []


def test_a_missing_bucket_names_the_setting(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    params = make_params(tmp_path, s3_endpoint, f"{bucket}-missing")
    with pytest.raises(StackError) as caught:
        ingest(params)
    message = str(caught.value)
    assert "does not exist" in message and "ingest.s3.bucket" in message
    assert caught.value.exit_code == 7


def run_ingest(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml", "ingest", "--params", "params.yaml"],
        cwd=project,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_refused_keys_exit_7_naming_the_setting(
    s3_auth_endpoint: S3AuthEndpoint, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    prefix = f"landing-{uuid.uuid4().hex[:8]}"
    config = {
        "ingest": {
            "source": "s3",
            "s3": {
                "bucket": "shopflow-dvc",
                "prefix": prefix,
                "endpoint_url": s3_auth_endpoint.url,
            },
        }
    }
    (project / "params.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = {k: v for k, v in env.items() if k not in _AWS_SETTINGS}
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID=s3_auth_endpoint.access_key_id,
    )

    wrong_secret = run_ingest(project, {**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert wrong_secret.returncode == 7, wrong_secret.stderr
    [line] = [x for x in wrong_secret.stderr.splitlines() if x.startswith("error:")]
    assert "Traceback" not in wrong_secret.stderr
    assert "SignatureDoesNotMatch" in line and "AWS_SECRET_ACCESS_KEY is wrong" in line
    assert f"s3://shopflow-dvc/{prefix}" in line

    unknown = run_ingest(
        project,
        {**env, "AWS_ACCESS_KEY_ID": "AKIAUNKNOWNKEY000000", "AWS_SECRET_ACCESS_KEY": "x"},
    )
    assert unknown.returncode == 7, unknown.stderr
    assert "InvalidAccessKeyId" in unknown.stderr and "fix AWS_ACCESS_KEY_ID" in unknown.stderr

    right = run_ingest(
        project, {**env, "AWS_SECRET_ACCESS_KEY": s3_auth_endpoint.secret_access_key}
    )
    assert right.returncode == 0, right.stderr
    assert not (project / "data/landing/utterances").exists()
