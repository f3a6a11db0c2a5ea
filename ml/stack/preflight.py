"""Preflight: can this deployment reach its services with the credentials it has, before any
work starts?

    python -m ml preflight [--check mlflow] [--check artifacts] [--check dvc]

Checks (all by default), each a :class:`CheckResult` (ok / failed / skipped + message):

* ``mlflow``: the tracking store answers (an http(s) server: one API call with MLflow's own
  credentials; a database: one connection; sqlite / file stores: the folder is writable).
* ``artifacts``: every artifact location the client writes itself (``mlflow.artifact_location``,
  the experiments' locations, the server's default root): for ``s3://``, credentials resolve,
  the endpoint answers, the bucket exists and a probe object can be written and deleted.
  ``mlflow-artifacts:/`` locations are served by the tracking server: nothing to check here.
* ``dvc``: the project's default DVC remote, the same S3 checks with DVC's settings.

A failure names the setting to fix (``AWS_SECRET_ACCESS_KEY``, ``MLFLOW_TRACKING_URI``, the DVC
remote's ``secret_access_key``...), in the words of :mod:`ml.stack.s3_errors`, which the
registry and the gate use too (a promotion with bad keys fails with the same message).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ml.core.errors import StackError
from ml.stack.s3_errors import (
    S3Context,
    endpoint_from_env,
    exception_chain,
    explain_s3_error,
    key_settings,
    mask_key,
    redact,
    with_keys,
)

if TYPE_CHECKING:
    from ml.core.config import MlflowConfig, Params

CHECKS = ("mlflow", "artifacts", "dvc")
# Seconds: a preflight must fail fast, not sit in MLflow's or botocore's retry loops.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15
PROBE_FOLDER = ".shopflow-preflight"


@dataclass
class CheckResult:
    """One check: ``status`` is ok, failed or skipped; ``target`` what was checked (secrets
    redacted); ``message`` what was found or what to fix."""

    check: str
    status: str
    target: str
    message: str

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _ok(check: str, target: str, message: str) -> CheckResult:
    return CheckResult(check, "ok", target, message)


def _failed(check: str, target: str, message: str) -> CheckResult:
    return CheckResult(check, "failed", target, message)


def _skipped(check: str, target: str, message: str) -> CheckResult:
    return CheckResult(check, "skipped", target, message)


# ----------------------------------------------------------------------------- S3 probe


def _fail_fast_client(session: Any, endpoint: str | None) -> Any:
    """An S3 client of ``session`` that gives up after one short attempt (no retry loop)."""
    from botocore.config import Config

    return session.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"total_max_attempts": 1},
        ),
    )


def check_s3_location(
    check: str,
    url: str,
    *,
    endpoint: str | None,
    endpoint_setting: str,
    location_setting: str,
    remote: str | None = None,
    explicit: dict[str, str] | None = None,
    profile: str | None = None,
    region: str | None = None,
) -> CheckResult:
    """Credentials resolve, the endpoint answers, the bucket exists, and a probe object can be
    written and deleted under ``url``. ``explicit`` keys (a DVC remote's config) win over the
    environment, as they do in DVC."""
    import boto3

    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    explicit = explicit or {}
    if remote and len({"access_key_id", "secret_access_key"} & set(explicit)) == 1:
        return _failed(
            check,
            url,
            f"DVC remote '{remote}' sets only one of access_key_id / secret_access_key: set "
            f"both (dvc remote modify --local {remote} ...) or neither (AWS_* variables)",
        )
    ctx = S3Context(
        endpoint=endpoint or "AWS S3",
        endpoint_setting=endpoint_setting,
        location_setting=location_setting,
        location=url,
    )
    try:
        session = boto3.session.Session(
            aws_access_key_id=explicit.get("access_key_id"),
            aws_secret_access_key=explicit.get("secret_access_key"),
            aws_session_token=explicit.get("session_token"),
            profile_name=profile,
            region_name=region,
        )
        credentials = session.get_credentials()
    except Exception as exc:  # e.g. ProfileNotFound, a broken ~/.aws/config
        ctx = with_keys(ctx, "explicit" if explicit else None, remote, None)
        return _failed(check, url, explain_s3_error(exc, ctx) or f"{type(exc).__name__}: {exc}")
    if credentials is None:
        access, secret, _ = key_settings(None)
        dvc_keys = f", or access_key_id / secret_access_key of DVC remote '{remote}'"
        return _failed(
            check,
            url,
            f"no AWS credentials found for {url}: set {access} and {secret} (or AWS_PROFILE)"
            + (dvc_keys if remote else ""),
        )
    client = _fail_fast_client(session, endpoint)
    ctx = replace(
        with_keys(ctx, credentials.method, remote, credentials.access_key),
        endpoint=str(client.meta.endpoint_url),
    )
    probe = "/".join(p for p in (prefix.rstrip("/"), PROBE_FOLDER, uuid.uuid4().hex) if p)
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        client.put_object(Bucket=bucket, Key=probe, Body=b"shopflow preflight probe\n")
        client.delete_object(Bucket=bucket, Key=probe)
    except Exception as exc:
        advice = explain_s3_error(exc, ctx)
        return _failed(check, url, advice or f"{type(exc).__name__}: {exc}")
    return _ok(
        check,
        url,
        f"read, write and delete work at {ctx.endpoint} with access key "
        f"{mask_key(credentials.access_key)} from {ctx.access_key_setting}",
    )


def _check_local_folder(check: str, folder: Path, setting: str) -> CheckResult:
    """The folder (or the nearest existing parent it would be created in) is writable."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return _failed(check, str(folder), f"{existing} is not a folder: fix {setting}")
    if not os.access(existing, os.W_OK | os.X_OK):
        return _failed(check, str(folder), f"{existing} is not writable: fix {setting}")
    return _ok(check, str(folder), f"writable folder ({setting})")


# ----------------------------------------------------------------------------- mlflow


def tracking_uri_setting(cfg: MlflowConfig) -> tuple[str, str]:
    """(tracking URI in force, the setting it came from)."""
    from ml.stack.tracking import resolve_tracking_uri

    uri, _ = resolve_tracking_uri(cfg)
    if uri != cfg.tracking_uri:
        return uri, "MLFLOW_TRACKING_URI"
    if os.environ.get("MLFLOW_TRACKING_URI") == uri:
        return uri, "MLFLOW_TRACKING_URI (same as mlflow.tracking_uri in params.yaml)"
    return uri, "mlflow.tracking_uri in params.yaml (MLFLOW_TRACKING_URI is not set)"


def _server_get(uri: str, endpoint: str, params: dict[str, str]) -> Any:
    """One GET to the tracking server with MLflow's credentials, no retries, short timeout."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    return http_request(
        get_default_host_creds(uri),
        endpoint,
        "GET",
        max_retries=0,
        timeout=READ_TIMEOUT,
        raise_on_status=False,
        params=params,
    )


def _http_auth_advice(status: int) -> str:
    given = [
        name
        for name in (
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_TOKEN",
        )
        if os.environ.get(name)
    ]
    settings = (
        "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN, "
        "or ~/.mlflow/credentials)"
    )
    if status == 401:
        if given:
            return f"HTTP 401: the server rejected {' / '.join(given)}: fix {settings}"
        return f"HTTP 401: the server wants credentials and none are set: set {settings}"
    return (
        f"HTTP 403: the tracking user may not read experiments: grant it READ, or set "
        f"another user in {settings}"
    )


def _connection_problem(exc: BaseException) -> str:
    """A few words on why an HTTP connection failed (requests buries it in a long repr)."""
    text = " ".join(str(error) for error in exception_chain(exc))
    for marker, words in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name does not resolve"),
        ("Temporary failure in name resolution", "host name does not resolve"),
        ("nodename nor servname", "host name does not resolve"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("SSLError", "TLS handshake failed"),
    ):
        if marker in text:
            return words
    return text[:200]


def check_mlflow(cfg: MlflowConfig) -> CheckResult:
    """The tracking store in force answers (or, for local stores, its folder is writable)."""
    uri, setting = tracking_uri_setting(cfg)
    target = redact(uri)
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        try:
            response = _server_get(
                uri,
                "/api/2.0/mlflow/experiments/get-by-name",
                {"experiment_name": cfg.intent_experiment},
            )
        except Exception as exc:
            return _failed(
                "mlflow",
                target,
                f"cannot reach the tracking server {target} ({_connection_problem(exc)}): fix "
                f"{setting} or start the server",
            )
        if response.status_code in (401, 403):
            return _failed("mlflow", target, _http_auth_advice(response.status_code))
        if response.status_code not in (200, 404):
            return _failed(
                "mlflow",
                target,
                f"tracking server answered HTTP {response.status_code} "
                f"({response.text[:200]!r}): is {setting} the MLflow server's URL?",
            )
        return _ok("mlflow", target, f"tracking server answers (from {setting})")
    if scheme == "sqlite":
        path = uri.split("sqlite:///", 1)[-1]
        if path in ("", ":memory:"):
            return _ok("mlflow", target, "in-memory sqlite store")
        result = _check_local_folder("mlflow", Path(path).parent, setting)
        return CheckResult("mlflow", result.status, target, result.message)
    if scheme in ("", "file"):
        folder = Path(urlsplit(uri).path if scheme == "file" else uri)
        result = _check_local_folder("mlflow", folder, setting)
        return CheckResult("mlflow", result.status, target, result.message)
    if scheme.split("+")[0] in ("postgresql", "mysql", "mssql"):
        return _check_database("mlflow", uri, setting)
    return _skipped("mlflow", target, f"{scheme} tracking stores are not checked")


def _check_database(check: str, uri: str, setting: str) -> CheckResult:
    import sqlalchemy

    args = {"connect_timeout": CONNECT_TIMEOUT} if uri.startswith("postgresql") else {}
    engine = sqlalchemy.create_engine(uri, connect_args=args)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300]
        return _failed(
            check,
            redact(uri),
            f"cannot connect to the backend store ({reason}): fix {setting} (host, user, "
            f"password, database)",
        )
    finally:
        engine.dispose()
    return _ok(check, redact(uri), f"database answers (from {setting})")


# ----------------------------------------------------------------------------- artifacts


def _experiment_locations(cfg: MlflowConfig, uri: str) -> list[tuple[str, str]]:
    """(artifact location, where it comes from) of the configured experiments; when neither
    exists yet, the store's Default experiment (its location shows the default root)."""
    found: list[tuple[str, str]] = []
    if urlsplit(uri).scheme in ("http", "https"):
        for name in (cfg.intent_experiment, cfg.recommender_experiment):
            response = _server_get(
                uri, "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": name}
            )
            if response.status_code == 200:
                location = response.json()["experiment"]["artifact_location"]
                found.append((location, f"artifact location of experiment '{name}'"))
            elif response.status_code != 404:
                raise StackError(f"tracking server answered HTTP {response.status_code}")
        if not found:
            response = _server_get(uri, "/api/2.0/mlflow/experiments/get", {"experiment_id": "0"})
            if response.status_code == 200:
                found.append(
                    (
                        response.json()["experiment"]["artifact_location"],
                        "the tracking server's --default-artifact-root",
                    )
                )
        return found
    if uri.startswith("sqlite:///") and not Path(uri.split("sqlite:///", 1)[1]).exists():
        return []  # a store not created yet: no experiments, and we do not create it here
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for name in (cfg.intent_experiment, cfg.recommender_experiment):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            found.append(
                (experiment.artifact_location, f"artifact location of experiment '{name}'")
            )
    return found


def check_artifacts(cfg: MlflowConfig, tracking_ok: bool = True) -> list[CheckResult]:
    """Every artifact location the client reads and writes itself."""
    uri, _ = tracking_uri_setting(cfg)
    locations: list[tuple[str, str]] = []
    if cfg.artifact_location:
        locations.append((cfg.artifact_location, "mlflow.artifact_location in params.yaml"))
    results: list[CheckResult] = []
    if tracking_ok:
        try:
            locations += _experiment_locations(cfg, uri)
        except Exception as exc:
            results.append(
                _failed(
                    "artifacts",
                    redact(uri),
                    f"cannot read the experiments' artifact locations from the tracking "
                    f"store: {str(exc)[:300]}",
                )
            )
    elif not locations:
        return [_skipped("artifacts", "-", "tracking store unreachable: locations unknown")]
    seen: set[str] = set()
    for location, origin in locations:
        if location in seen:
            continue
        seen.add(location)
        results.append(_check_artifact_location(location, origin))
    if not results:
        results.append(
            _skipped(
                "artifacts",
                redact(uri),
                "no experiment yet and no mlflow.artifact_location: the store's local default",
            )
        )
    return results


def _check_artifact_location(location: str, origin: str) -> CheckResult:
    scheme = urlsplit(location).scheme
    if scheme in ("s3", "s3a"):
        endpoint, endpoint_setting = endpoint_from_env("MLFLOW_S3_ENDPOINT_URL")
        return check_s3_location(
            "artifacts",
            location,
            endpoint=endpoint,
            endpoint_setting=endpoint_setting,
            location_setting=origin,
        )
    if scheme == "mlflow-artifacts":
        return _skipped(
            "artifacts",
            location,
            "served by the tracking server (mlflow-artifacts): the client needs no AWS keys; "
            "the server's own credentials are checked by its health",
        )
    if scheme in ("", "file"):
        folder = Path(urlsplit(location).path if scheme == "file" else location)
        return _check_local_folder("artifacts", folder, origin)
    return _skipped("artifacts", location, f"{scheme} artifact stores are not checked")


# ----------------------------------------------------------------------------- dvc


def check_dvc(project_dir: Path = Path("."), remote: str | None = None) -> CheckResult:
    """The DVC remote (default: the project's default remote) is usable from here."""
    dvc_dir = project_dir / ".dvc"
    if not dvc_dir.is_dir():
        return _skipped("dvc", str(project_dir), "not a DVC project (no .dvc folder)")
    from dvc.config import Config
    from dvc.config import ConfigError as DvcConfigError

    try:
        config = Config(dvc_dir=str(dvc_dir))
    except DvcConfigError as exc:
        return _failed("dvc", str(dvc_dir), f"{exc}: fix .dvc/config or .dvc/config.local")
    name = remote or config["core"].get("remote")
    if not name:
        return _skipped("dvc", str(dvc_dir), "no default DVC remote (dvc remote default NAME)")
    settings = config["remote"].get(name)
    if settings is None:
        return _failed(
            "dvc",
            str(dvc_dir),
            f"DVC remote '{name}' is not defined in .dvc/config or .dvc/config.local",
        )
    url = str(settings["url"])
    scheme = urlsplit(url).scheme
    target = f"{name}: {url}"
    if scheme == "s3":
        endpoint: str | None
        if settings.get("endpointurl"):
            endpoint, endpoint_setting = (
                str(settings["endpointurl"]),
                f"endpointurl of DVC remote '{name}'",
            )
        else:
            endpoint, endpoint_setting = endpoint_from_env()
        explicit = {
            key: str(settings[key])
            for key in ("access_key_id", "secret_access_key", "session_token")
            if settings.get(key)
        }
        result = check_s3_location(
            "dvc",
            url,
            endpoint=endpoint,
            endpoint_setting=endpoint_setting,
            location_setting=f"url of DVC remote '{name}'",
            remote=name,
            explicit=explicit,
            profile=settings.get("profile"),
            region=settings.get("region"),
        )
        return CheckResult("dvc", result.status, target, result.message)
    if scheme == "":
        result = _check_local_folder("dvc", Path(url), f"url of DVC remote '{name}'")
        return CheckResult("dvc", result.status, target, result.message)
    return _skipped("dvc", target, f"{scheme} DVC remotes are not checked")


# ----------------------------------------------------------------------------- all together


def run_checks(
    params: Params,
    checks: tuple[str, ...] | list[str] = CHECKS,
    project_dir: Path = Path("."),
    dvc_remote: str | None = None,
) -> list[CheckResult]:
    """Run the selected checks; never raises for a failed check (see :func:`require_ok`)."""
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise StackError(f"unknown preflight check(s) {unknown}; expected some of {CHECKS}")
    results: list[CheckResult] = []
    tracking_ok = True
    if "mlflow" in checks:
        result = check_mlflow(params.mlflow)
        tracking_ok = not result.failed
        results.append(result)
    if "artifacts" in checks:
        results += check_artifacts(params.mlflow, tracking_ok)
    if "dvc" in checks:
        results.append(check_dvc(project_dir, dvc_remote))
    return results


def require_ok(results: list[CheckResult]) -> None:
    """Raise one StackError listing every failed check."""
    failed = [r for r in results if r.failed]
    if failed:
        listed = "; ".join(f"[{r.check}] {r.target}: {r.message}" for r in failed)
        raise StackError(f"preflight: {len(failed)} of {len(results)} checks failed: {listed}")


def format_table(results: list[CheckResult]) -> str:
    rows = [("check", "status", "target", "message")] + [
        (r.check, r.status, r.target, r.message) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    )


def preflight(
    params: Params,
    checks: tuple[str, ...] | list[str] = CHECKS,
    project_dir: Path = Path("."),
    dvc_remote: str | None = None,
) -> dict[str, Any]:
    """Run the checks, print a table to stderr (an INFO record inside an Airflow task), raise
    StackError if any failed; else a JSON-able summary."""
    from ml.core.progress import report

    results = run_checks(params, checks, project_dir, dvc_remote)
    report(format_table(results))
    require_ok(results)
    return {"ok": True, "checks": [r.to_dict() for r in results]}
