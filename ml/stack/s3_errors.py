"""What went wrong with an S3 store, in the words of the setting to fix.

:func:`explain_s3_error` is the one place that turns botocore/MLflow errors (credentials,
endpoint, bucket) into advice naming the setting (``AWS_SECRET_ACCESS_KEY``,
``MLFLOW_S3_ENDPOINT_URL``, a DVC remote's ``secret_access_key``...); preflight's probes, the
registry and the gate use it (the last two through :func:`stack_errors_explained`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

from ml.core.errors import ShopflowError, StackError
from ml.stack.credentials import CREDENTIALS_SOURCE_VARIABLE


def redact(uri: str) -> str:
    """``uri`` without the password of its user info (``postgresql://u:***@host/db``)."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def mask_key(access_key_id: str | None) -> str:
    """An access key id shortened for messages: enough to tell keys apart, not to copy one."""
    if not access_key_id:
        return "(none)"
    if len(access_key_id) <= 8:
        return access_key_id[:2] + "…"
    return f"{access_key_id[:4]}…{access_key_id[-4:]}"


# ----------------------------------------------------------------------------- S3 advice


@dataclass(frozen=True)
class S3Context:
    """Where an S3 client got its settings, so an error can name what to fix."""

    endpoint: str
    endpoint_setting: str
    location_setting: str
    location: str | None = None
    access_key_setting: str = "AWS_ACCESS_KEY_ID"
    secret_key_setting: str = "AWS_SECRET_ACCESS_KEY"
    token_setting: str = "AWS_SESSION_TOKEN"
    access_key_id: str | None = None


def endpoint_from_env(first: str | None = None) -> tuple[str | None, str]:
    """(endpoint URL or None for AWS, the variable that set it). ``first`` is the client's own
    variable (MLFLOW_S3_ENDPOINT_URL); botocore then honours the AWS_ENDPOINT_URL* ones."""
    for name in (first, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if name and os.environ.get(name):
            return os.environ[name], name
    return None, first or "AWS_ENDPOINT_URL_S3"


def key_settings(method: str | None, remote: str | None = None) -> tuple[str, str, str]:
    """Names of the settings that supplied the keys (botocore's credential ``method``)."""
    if method == "explicit" and remote is not None:
        where = f"of DVC remote '{remote}' (dvc remote modify --local {remote} ...)"
        return (
            f"access_key_id {where}",
            f"secret_access_key {where}",
            f"session_token {where}",
        )
    if method in ("shared-credentials-file", "config-file"):
        profile = os.environ.get("AWS_PROFILE", "default")
        where = f"profile '{profile}' in ~/.aws (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE)"
        return (
            f"aws_access_key_id of {where}",
            f"aws_secret_access_key of {where}",
            f"aws_session_token of {where}",
        )
    source = os.environ.get(CREDENTIALS_SOURCE_VARIABLE)
    if source:  # applied from an Airflow connection by ml.stack.credentials
        return (
            f"the login (access key id) of {source}",
            f"the password (secret access key) of {source}",
            f"aws_session_token in the extra of {source}",
        )
    return "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"


def with_keys(
    ctx: S3Context, method: str | None, remote: str | None, access_key_id: str | None
) -> S3Context:
    """``ctx`` naming the settings that hold the keys for ``method`` (env, profile, DVC remote)."""
    access, secret, token = key_settings(method, remote)
    return replace(
        ctx,
        access_key_setting=access,
        secret_key_setting=secret,
        token_setting=token,
        access_key_id=access_key_id,
    )


def mlflow_s3_context(location: str | None = None, access_key_id: str | None = None) -> S3Context:
    """The settings MLflow's S3 artifact client reads (environment, default AWS chain)."""
    endpoint, endpoint_setting = endpoint_from_env("MLFLOW_S3_ENDPOINT_URL")
    from_profile = not os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_PROFILE")
    ctx = S3Context(
        endpoint=endpoint or "AWS S3",
        endpoint_setting=endpoint_setting,
        location_setting=(
            "mlflow.artifact_location in params.yaml, or the tracking server's "
            "--default-artifact-root"
        ),
        location=location,
    )
    method = "shared-credentials-file" if from_profile else "env"
    return with_keys(ctx, method, None, access_key_id or os.environ.get("AWS_ACCESS_KEY_ID"))


# botocore error codes -> a canonical problem; the text markers catch errors MLflow re-raised
# as plain messages (parallel downloads report failures as strings).
_CODE_PROBLEMS = {
    "InvalidAccessKeyId": "unknown_key",
    "SignatureDoesNotMatch": "wrong_secret",
    "InvalidToken": "bad_token",
    "ExpiredToken": "bad_token",
    "TokenRefreshRequired": "bad_token",
    "AccessDenied": "denied",
    "AllAccessDisabled": "denied",
    "403": "denied",
    "Forbidden": "denied",
    "NoSuchBucket": "no_bucket",
    "InvalidBucketName": "no_bucket",
}
_TEXT_PROBLEMS = {
    **{code: problem for code, problem in _CODE_PROBLEMS.items() if not code.isdigit()},
    "Unable to locate credentials": "no_credentials",
    "Partial credentials found": "partial_credentials",
    "Could not connect to the endpoint URL": "unreachable",
    "Connect timeout on endpoint URL": "unreachable",
}


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _classify(exc: BaseException) -> tuple[str, str] | None:
    """(problem, detail) for an S3 failure anywhere in the exception chain, else None."""
    from botocore import exceptions as bex

    for error in exception_chain(exc):
        if isinstance(error, bex.NoCredentialsError):
            return "no_credentials", str(error)
        if isinstance(error, bex.PartialCredentialsError):
            return "partial_credentials", str(error)
        if isinstance(error, bex.ProfileNotFound):
            return "no_profile", str(error)
        if isinstance(error, bex.ConnectionError | bex.ReadTimeoutError):
            return "unreachable", str(error).split(":")[0]  # drop the long request URL
        if isinstance(error, bex.ClientError):
            info = error.response.get("Error", {})
            code = str(info.get("Code", ""))
            detail = f"{code}: {info.get('Message', '')}".strip(": ")
            problem = _CODE_PROBLEMS.get(code)
            if code == "404" and error.operation_name in ("HeadBucket", "ListObjectsV2"):
                problem = "no_bucket"  # a bodiless 404; on objects it means a missing file
            return problem or "other", detail
    text = " ".join(str(error) for error in exception_chain(exc))
    for marker, problem in _TEXT_PROBLEMS.items():
        if marker in text:
            return problem, marker
    return None


def _bucket_of(exc: BaseException, location: str | None) -> str | None:
    if location and location.startswith("s3://"):
        return urlsplit(location).netloc
    from botocore.exceptions import ClientError

    for error in exception_chain(exc):
        if isinstance(error, ClientError) and error.response.get("Error", {}).get("BucketName"):
            return str(error.response["Error"]["BucketName"])
    found = re.search(r"s3a?://([^/\s'\"]+)", str(exc))
    return found.group(1) if found else None


def explain_s3_error(exc: BaseException, ctx: S3Context) -> str | None:
    """Advice naming the setting to fix for an S3 failure (credentials, endpoint, bucket,
    permissions) anywhere in ``exc``'s chain; None when ``exc`` is not an S3 failure."""
    found = _classify(exc)
    if found is None:
        return None
    problem, detail = found
    location = ctx.location or (
        m.group(0) if (m := re.search(r"s3a?://[^\s'\":]+", str(exc))) else None
    )
    bucket = _bucket_of(exc, location)
    where = f"{location} at {ctx.endpoint}" if location else f"S3 endpoint {ctx.endpoint}"
    key = mask_key(ctx.access_key_id)
    keys = f"{ctx.access_key_setting} and {ctx.secret_key_setting}"
    if problem == "no_credentials":
        return f"no AWS credentials found for {where}: set {keys} (or AWS_PROFILE)"
    if problem == "partial_credentials":
        return f"incomplete AWS credentials for {where} ({detail}): set both {keys}"
    if problem == "no_profile":
        return f"{detail}: fix or unset AWS_PROFILE"
    if problem == "unreachable":
        return (
            f"cannot reach the S3 endpoint {ctx.endpoint} ({detail}): fix "
            f"{ctx.endpoint_setting} or start the object store"
        )
    if problem == "unknown_key":
        return (
            f"{where} does not know access key {key} (InvalidAccessKeyId): fix "
            f"{ctx.access_key_setting} (and {ctx.secret_key_setting})"
        )
    if problem == "wrong_secret":
        return (
            f"{where} rejected the signature of access key {key} (SignatureDoesNotMatch): "
            f"{ctx.secret_key_setting} is wrong for {ctx.access_key_setting}"
        )
    if problem == "bad_token":
        return (
            f"{where} rejected the session token of access key {key} ({detail}): renew "
            f"{ctx.token_setting} with its keys, or unset it for long-term keys"
        )
    if problem == "denied":
        return (
            f"access key {key} may not use bucket {bucket or '?'} ({where}; {detail}): grant it "
            f"s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject, or set other "
            f"keys in {keys}"
        )
    if problem == "no_bucket":
        return (
            f"bucket {bucket or '?'} does not exist at {ctx.endpoint} ({detail}): create it, "
            f"or fix {ctx.location_setting}"
        )
    return f"{where} failed ({detail}); check {keys} and {ctx.endpoint_setting}"


@contextmanager
def stack_errors_explained(action: str, location: str | None = None) -> Iterator[None]:
    """Turn an MLflow artifact-store failure (credentials, endpoint, bucket) raised inside the
    block into a StackError naming the setting to fix; anything else propagates unchanged."""
    try:
        yield
    except ShopflowError:
        raise
    except Exception as exc:
        found = _classify(exc)
        if found is None or found[0] == "other":  # e.g. a missing file: not the stack's fault
            raise
        advice = explain_s3_error(exc, mlflow_s3_context(location))
        raise StackError(f"{action}: {advice}") from exc
