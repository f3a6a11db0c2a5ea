"""Preflight against an S3 endpoint that checks keys: each broken setting is named, all good
passes, and the CLI exits 7 with the message on stderr."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from ml import cli
from ml.core.config import Params
from ml.core.errors import StackError
from ml.stack.preflight import CheckResult, require_ok, run_checks
from tests.stack.conftest import UNKNOWN_KEY, WRONG_SECRET, init_dvc_project, run_ml
from tests.support.services import S3AuthEndpoint, free_port

pytestmark = pytest.mark.services

Aws = Callable[..., None]


def make_params(tmp_path: Path, artifact_location: str | None) -> Params:
    return Params.model_validate(
        {
            "mlflow": {
                "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                "artifact_location": artifact_location,
            }
        }
    )


def by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    assert len({r.check for r in results}) == len(results), results
    return {r.check: r for r in results}


@pytest.fixture
def project(tmp_path: Path, s3_auth_endpoint: S3AuthEndpoint) -> Path:
    return init_dvc_project(tmp_path / "project", "s3://shopflow-dvc/store", s3_auth_endpoint.url)


def test_everything_usable_passes(aws: Aws, tmp_path: Path, project: Path) -> None:
    params = make_params(tmp_path, "s3://shopflow-mlflow/artifacts")
    results = by_check(run_checks(params, project_dir=project))
    assert {name: r.status for name, r in results.items()} == {
        "mlflow": "ok",
        "artifacts": "ok",
        "dvc": "ok",
    }, results
    assert "AWS_ACCESS_KEY_ID" in results["artifacts"].message
    require_ok(list(results.values()))  # does not raise
    # No probe object is left behind in either bucket.
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
        region_name="us-east-1",
    )
    for bucket in ("shopflow-mlflow", "shopflow-dvc"):
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert not [k for k in keys if ".shopflow-preflight" in k], keys


def test_missing_keys_name_the_variables_and_fail_together(
    aws: Aws, tmp_path: Path, project: Path
) -> None:
    aws(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    results = run_checks(
        make_params(tmp_path, "s3://shopflow-mlflow/artifacts"), project_dir=project
    )
    checks = by_check(results)
    assert checks["mlflow"].status == "ok"
    assert checks["artifacts"].failed and "AWS_ACCESS_KEY_ID" in checks["artifacts"].message
    assert checks["dvc"].failed
    assert "access_key_id / secret_access_key of DVC remote 'store'" in checks["dvc"].message
    with pytest.raises(StackError) as raised:
        require_ok(results)
    # One error lists every failed check.
    assert "2 of 3 checks failed" in str(raised.value)
    assert "[artifacts]" in str(raised.value) and "[dvc]" in str(raised.value)
    assert raised.value.exit_code == 7


def test_wrong_secret_names_the_secret_and_the_endpoint(
    aws: Aws, tmp_path: Path, project: Path, s3_auth_endpoint: S3AuthEndpoint
) -> None:
    aws(AWS_SECRET_ACCESS_KEY=WRONG_SECRET)
    checks = by_check(
        run_checks(
            make_params(tmp_path, "s3://shopflow-mlflow/artifacts"),
            ["artifacts", "dvc"],
            project_dir=project,
        )
    )
    for name in ("artifacts", "dvc"):
        message = checks[name].message
        assert checks[name].failed, checks[name]
        assert "SignatureDoesNotMatch" in message and s3_auth_endpoint.url in message
        assert "AWS_SECRET_ACCESS_KEY is wrong for AWS_ACCESS_KEY_ID" in message
        assert s3_auth_endpoint.secret_access_key not in message


def test_unknown_key_names_the_access_key(aws: Aws, tmp_path: Path) -> None:
    aws(AWS_ACCESS_KEY_ID=UNKNOWN_KEY)
    (result,) = run_checks(make_params(tmp_path, "s3://shopflow-mlflow/artifacts"), ["artifacts"])
    assert result.failed
    assert "InvalidAccessKeyId" in result.message and "fix AWS_ACCESS_KEY_ID" in result.message


def test_missing_bucket_names_the_bucket_and_the_setting(
    aws: Aws, tmp_path: Path, s3_auth_endpoint: S3AuthEndpoint
) -> None:
    project = init_dvc_project(
        tmp_path / "project", "s3://no-such-dvc-bucket/store", s3_auth_endpoint.url
    )
    checks = by_check(
        run_checks(
            make_params(tmp_path, "s3://no-such-mlflow-bucket/artifacts"),
            ["artifacts", "dvc"],
            project_dir=project,
        )
    )
    assert checks["artifacts"].failed and checks["dvc"].failed
    assert "bucket no-such-mlflow-bucket does not exist" in checks["artifacts"].message
    assert "mlflow.artifact_location in params.yaml" in checks["artifacts"].message
    assert "bucket no-such-dvc-bucket does not exist" in checks["dvc"].message
    assert "url of DVC remote 'store'" in checks["dvc"].message


def test_dvc_remote_keys_from_config_local(
    aws: Aws, tmp_path: Path, s3_auth_endpoint: S3AuthEndpoint
) -> None:
    aws(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    good = init_dvc_project(
        tmp_path / "good",
        "s3://shopflow-dvc/store",
        s3_auth_endpoint.url,
        access_key_id=s3_auth_endpoint.access_key_id,
        secret_access_key=s3_auth_endpoint.secret_access_key,
    )
    (ok,) = run_checks(make_params(tmp_path, None), ["dvc"], project_dir=good)
    assert ok.status == "ok", ok
    assert "access_key_id of DVC remote 'store'" in ok.message
    bad = init_dvc_project(
        tmp_path / "bad",
        "s3://shopflow-dvc/store",
        s3_auth_endpoint.url,
        access_key_id=s3_auth_endpoint.access_key_id,
        secret_access_key=WRONG_SECRET,
    )
    (failed,) = run_checks(make_params(tmp_path, None), ["dvc"], project_dir=bad)
    assert failed.failed
    assert "secret_access_key of DVC remote 'store'" in failed.message
    assert "SignatureDoesNotMatch" in failed.message
    half = init_dvc_project(
        tmp_path / "half",
        "s3://shopflow-dvc/store",
        s3_auth_endpoint.url,
        access_key_id=s3_auth_endpoint.access_key_id,
    )
    (partial,) = run_checks(make_params(tmp_path, None), ["dvc"], project_dir=half)
    assert (
        partial.failed and "sets only one of access_key_id / secret_access_key" in partial.message
    )


def test_unreachable_endpoint_names_the_endpoint_setting(aws: Aws, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    aws(MLFLOW_S3_ENDPOINT_URL=nowhere)
    (result,) = run_checks(make_params(tmp_path, "s3://shopflow-mlflow/artifacts"), ["artifacts"])
    assert result.failed
    assert f"cannot reach the S3 endpoint {nowhere}" in result.message
    assert "fix MLFLOW_S3_ENDPOINT_URL" in result.message


def test_unreachable_tracking_server_names_the_uri_setting(aws: Aws, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    aws(MLFLOW_TRACKING_URI=nowhere)
    checks = by_check(run_checks(make_params(tmp_path, None), ["mlflow", "artifacts"]))
    assert checks["mlflow"].failed
    assert f"cannot reach the tracking server {nowhere}" in checks["mlflow"].message
    assert "fix MLFLOW_TRACKING_URI" in checks["mlflow"].message
    assert checks["artifacts"].status == "skipped"

    # The same URI from params.yaml names params.yaml's key instead.
    aws(MLFLOW_TRACKING_URI=None)
    params = Params.model_validate({"mlflow": {"tracking_uri": nowhere}})
    (from_params,) = run_checks(params, ["mlflow"])
    assert from_params.failed and "fix mlflow.tracking_uri in params.yaml" in from_params.message


class AuthWall(BaseHTTPRequestHandler):
    """A tracking server behind basic auth (as with `mlflow server --app-name basic-auth`):
    401 without the right user/password, 403 for a known user without READ."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        header = self.headers.get("Authorization")
        AuthWall.seen.append(header)
        allowed = "Basic " + base64.b64encode(b"reader:right").decode()
        no_read = "Basic " + base64.b64encode(b"writer-only:right").decode()
        status = 200 if header == allowed else 403 if header == no_read else 401
        body = b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}' if status == 200 else b"denied"
        self.send_response(404 if status == 200 else status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_tracking_server_auth_failures_name_the_mlflow_credentials(
    aws: Aws, tmp_path: Path
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AuthWall)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    params = Params.model_validate({"mlflow": {"tracking_uri": url}})
    try:
        aws(MLFLOW_TRACKING_USERNAME=None, MLFLOW_TRACKING_PASSWORD=None)
        (none_set,) = run_checks(params, ["mlflow"])
        assert none_set.failed and "HTTP 401" in none_set.message
        assert "none are set: set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD" in (
            none_set.message
        )

        aws(MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD="wrong")
        (rejected,) = run_checks(params, ["mlflow"])
        assert rejected.failed
        assert "rejected MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD" in rejected.message

        aws(MLFLOW_TRACKING_USERNAME="writer-only", MLFLOW_TRACKING_PASSWORD="right")
        (forbidden,) = run_checks(params, ["mlflow"])
        assert forbidden.failed and "HTTP 403" in forbidden.message

        aws(MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD="right")
        (good,) = run_checks(params, ["mlflow"])
        assert good.status == "ok", good.message
    finally:
        server.shutdown()
    # The check really sent MLflow's credentials (none the first time).
    assert AuthWall.seen[0] is None and all(AuthWall.seen[1:])


def test_sqlite_store_in_an_unusable_folder(aws: Aws, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    params = Params.model_validate(
        {"mlflow": {"tracking_uri": f"sqlite:///{blocker / 'sub' / 'mlflow.db'}"}}
    )
    (result,) = run_checks(params, ["mlflow"])
    assert result.failed and "is not a folder" in result.message
    assert "mlflow.tracking_uri in params.yaml" in result.message


def test_artifacts_served_by_the_tracking_server_need_no_keys(aws: Aws, tmp_path: Path) -> None:
    aws(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    (result,) = run_checks(make_params(tmp_path, "mlflow-artifacts:/shopflow"), ["artifacts"])
    assert result.status == "skipped"
    assert "needs no AWS keys" in result.message


def test_cli_exits_7_with_the_message_on_stderr(
    aws: Aws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = [
        "--set",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "--set",
        "mlflow.artifact_location=s3://shopflow-mlflow/artifacts",
    ]
    # Success, in process: the JSON result on stdout, the table on stderr.
    assert cli.main(["preflight", "--check", "mlflow", "--check", "artifacts", *settings]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["ok"] is True
    assert "artifacts" in err and "ok" in err

    aws(AWS_SECRET_ACCESS_KEY=WRONG_SECRET)
    done = run_ml(tmp_path, dict(os.environ), "preflight", "--check", "artifacts", *settings)
    assert done.returncode == 7, done.stderr
    error_line = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_line) == 1, done.stderr
    assert "AWS_SECRET_ACCESS_KEY" in error_line[0]
    assert "s3://shopflow-mlflow/artifacts" in error_line[0]
    assert done.stdout == ""
