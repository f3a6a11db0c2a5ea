"""``ingest.source: s3``: partitions uploaded to a bucket (AWS S3, MinIO, moto) land locally.

The bucket is laid out like ``data/landing``::

    <ingest.s3.prefix>/<dataset>/date=YYYY-MM-DD/part-*.csv | part-*.parquet

Other keys are listed as ignored. What has been ingested is kept in a **ledger**,
``<paths.landing>/.s3-ledger.json``: per ``s3://bucket/key`` its ETag, size, where it landed
and when. An object whose ETag and size match its entry is skipped; a new key or a re-uploaded
one (ETag or size changed) is downloaded again. The ledger lives with the landing area it
describes: whatever clears ``data/landing`` (a ``dvc repro`` of the ingest stage) clears it too,
and the next ingest fetches everything again (validation skips content it already accepted).

Each partition's new objects are downloaded into ``<paths.landing>/.s3-incoming/<run>/`` (not a
partition folder: validation never sees a half-written file), checked (size, and the MD5 when
the ETag is one: not multipart, not SSE-KMS/SSE-C) and only then renamed into
``<dataset>/date=.../``; the ledger is rewritten atomically (temporary file + rename) after each
partition. A failure leaves neither a file in the partition nor a ledger entry. The bucket is
only read (list, get): nothing is deleted or rewritten there.

Credentials come from the environment (``AWS_*``), which an Airflow task fills from the
connection named by ``SHOPFLOW_AWS_CONN_ID`` (ml.stack.credentials); a refused key, an
unreachable endpoint or a missing bucket is a StackError (exit code 7) naming the setting to
fix, in the words of ml.stack.s3_errors. :func:`pending_objects` is what shop_ingest's sensor
polls; :func:`ingest_s3` what ``python -m ml ingest`` runs: one listing, two callers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.core.errors import ConfigError, ShopflowError, StackError
from ml.core.schemas import DATASETS
from ml.stack.s3_errors import (
    S3Context,
    endpoint_from_env,
    explain_s3_error,
    key_settings,
    with_keys,
)

if TYPE_CHECKING:
    from ml.core.config import Params, S3LandingConfig

log = logging.getLogger(__name__)

LEDGER_NAME = ".s3-ledger.json"
STAGING_NAME = ".s3-incoming"
LEDGER_FORMAT = 1
CHUNK_BYTES = 1 << 20
MAX_IGNORED_LISTED = 20
_KEY = re.compile(
    rf"^(?P<dataset>{'|'.join(DATASETS)})/(?P<partition>date=\d{{4}}-\d{{2}}-\d{{2}})/"
    r"(?P<name>part-[^/]+\.(?:csv|parquet))$"
)
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class LandingObject:
    """One partition file in the bucket, as listed."""

    key: str
    etag: str  # without quotes
    size: int
    dataset: str
    partition: str  # date=YYYY-MM-DD
    name: str  # part-*.csv | part-*.parquet

    @property
    def rel(self) -> Path:
        """Where it lands, relative to ``paths.landing``."""
        return Path(self.dataset) / self.partition / self.name


@dataclass(frozen=True)
class Listing:
    """The bucket's partition files under the prefix, split against the ledger."""

    location: str
    new: list[LandingObject]
    changed: list[LandingObject]
    unchanged: list[LandingObject]
    ignored: list[str]

    @property
    def pending(self) -> list[LandingObject]:
        return self.new + self.changed


def location_of(cfg: S3LandingConfig) -> str:
    prefix = cfg.prefix.strip("/")
    return f"s3://{cfg.bucket}/{prefix}" if prefix else f"s3://{cfg.bucket}"


def _key_prefix(cfg: S3LandingConfig) -> str:
    prefix = cfg.prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _context(cfg: S3LandingConfig) -> S3Context:
    if cfg.endpoint_url:
        endpoint, setting = cfg.endpoint_url, "ingest.s3.endpoint_url in params.yaml"
    else:
        found, variable = endpoint_from_env(None)
        endpoint = found or "AWS S3"
        setting = variable if found else "ingest.s3.endpoint_url in params.yaml"
    return S3Context(
        endpoint=endpoint,
        endpoint_setting=setting,
        location_setting="ingest.s3.bucket / ingest.s3.prefix in params.yaml",
        location=location_of(cfg),
    )


@contextmanager
def _explained(action: str, ctx: S3Context) -> Iterator[None]:
    """Any S3 failure in the block becomes a StackError naming the setting to fix."""
    try:
        yield
    except ShopflowError:
        raise
    except Exception as exc:
        advice = explain_s3_error(exc, ctx) or f"{type(exc).__name__}: {exc}"
        raise StackError(f"{action}: {advice}") from exc


def s3_client(cfg: S3LandingConfig) -> tuple[Any, S3Context]:
    """A boto3 S3 client for the landing bucket with the credentials in force, and the context
    its errors are explained in."""
    import boto3
    from botocore.config import Config

    if not cfg.bucket:
        raise ConfigError("ingest.source is s3 but ingest.s3.bucket is not set")
    ctx = _context(cfg)
    with _explained(f"S3 landing {ctx.location}", ctx):
        session = boto3.session.Session(region_name=cfg.region)
        credentials = session.get_credentials()
    if credentials is None:
        access, secret, _ = key_settings(None)
        raise StackError(
            f"S3 landing {ctx.location}: no AWS credentials found for {ctx.location} at "
            f"{ctx.endpoint}: set {access} and {secret} (or AWS_PROFILE)"
        )
    client = session.client(
        "s3",
        endpoint_url=cfg.endpoint_url or None,
        config=Config(connect_timeout=10, read_timeout=60, retries={"total_max_attempts": 3}),
    )
    ctx = replace(
        with_keys(ctx, credentials.method, None, credentials.access_key),
        endpoint=str(client.meta.endpoint_url),
    )
    return client, ctx


def list_objects(client: Any, cfg: S3LandingConfig) -> tuple[list[LandingObject], list[str]]:
    """(partition files under the prefix in key order, other keys). An empty prefix is fine."""
    prefix = _key_prefix(cfg)
    found: list[LandingObject] = []
    ignored: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=cfg.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            match = _KEY.match(key[len(prefix) :])
            if match is None:
                if not key.endswith("/"):  # folder markers are not data
                    ignored.append(key)
                continue
            found.append(
                LandingObject(
                    key=key,
                    etag=str(item.get("ETag", "")).strip('"'),
                    size=int(item["Size"]),
                    **match.groupdict(),
                )
            )
    return sorted(found, key=lambda o: o.key), ignored


def ledger_path(params: Params) -> Path:
    return params.paths.landing / LEDGER_NAME


def read_ledger(path: Path) -> dict[str, Any]:
    """``{"s3://bucket/key": {"etag", "size", "landed", "ingested_at"}}``; {} before the first
    ingest. A ledger that is not ours is an error (not silently refetch everything)."""
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        objects = document["objects"]
        if not isinstance(objects, dict):
            raise TypeError("objects is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not an S3 landing ledger ({exc}): move it away to fetch every "
            "object of ingest.s3 again"
        ) from exc
    return dict(objects)


def write_ledger(path: Path, objects: dict[str, Any]) -> None:
    """Write the ledger atomically: a reader sees the old one or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    document = {"format": LEDGER_FORMAT, "objects": dict(sorted(objects.items()))}
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def ledger_key(cfg: S3LandingConfig, obj: LandingObject) -> str:
    return f"s3://{cfg.bucket}/{obj.key}"


def compare(cfg: S3LandingConfig, client: Any, ledger: dict[str, Any]) -> Listing:
    """List the bucket and sort each partition file into new, changed (re-uploaded: another
    ETag or size than the ledger's) or unchanged."""
    ctx_location = location_of(cfg)
    objects, ignored = list_objects(client, cfg)
    new: list[LandingObject] = []
    changed: list[LandingObject] = []
    unchanged: list[LandingObject] = []
    for obj in objects:
        entry = ledger.get(ledger_key(cfg, obj))
        if entry is None:
            new.append(obj)
        elif entry.get("etag") != obj.etag or entry.get("size") != obj.size:
            changed.append(obj)
        else:
            unchanged.append(obj)
    return Listing(ctx_location, new, changed, unchanged, ignored)


def pending_objects(params: Params) -> list[LandingObject]:
    """New or re-uploaded partition files in the landing bucket (what the sensor waits for)."""
    cfg = params.ingest.s3
    client, ctx = s3_client(cfg)
    with _explained(f"listing S3 landing {ctx.location}", ctx):
        return compare(cfg, client, read_ledger(ledger_path(params))).pending


def _verify(obj: LandingObject, size: int, md5: str, response: dict[str, Any]) -> None:
    if size != obj.size:
        raise StackError(
            f"s3 object {obj.key}: downloaded {size} bytes, listed as {obj.size}: the download "
            "was cut short or the object changed meanwhile; run ingest again"
        )
    encrypted = response.get("ServerSideEncryption") == "aws:kms" or response.get(
        "SSECustomerAlgorithm"
    )
    if _PLAIN_MD5.match(obj.etag) and not encrypted and md5 != obj.etag:
        raise StackError(
            f"s3 object {obj.key}: MD5 of the download {md5} differs from its ETag {obj.etag}: "
            "the download is corrupt or the object changed meanwhile; run ingest again"
        )


def download(client: Any, bucket: str, obj: LandingObject, dest: Path) -> None:
    """Stream ``obj`` (the version listed: IfMatch its ETag) to ``dest`` and verify it."""
    response = client.get_object(Bucket=bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with dest.open("wb") as fh:
        for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
            fh.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    _verify(obj, size, digest.hexdigest(), response)


def land_partition(
    client: Any, cfg: S3LandingConfig, objects: list[LandingObject], landing: Path, ctx: S3Context
) -> None:
    """Download one partition's pending files into a staging folder, then rename them into the
    partition folder; on any failure nothing reaches the partition folder."""
    staging_root = landing / STAGING_NAME
    staging = staging_root / uuid.uuid4().hex
    staging.mkdir(parents=True)
    try:
        for obj in objects:
            with _explained(f"downloading {ledger_key(cfg, obj)}", ctx):
                download(client, str(cfg.bucket), obj, staging / obj.name)
        for obj in objects:
            target = landing / obj.rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / obj.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if staging_root.is_dir() and not any(staging_root.iterdir()):
            staging_root.rmdir()


def ingest_s3(params: Params) -> dict[str, Any]:
    """Download every new or re-uploaded partition file from the landing bucket into
    ``paths.landing`` once, recording each in the ledger."""
    cfg = params.ingest.s3
    landing = params.paths.landing
    client, ctx = s3_client(cfg)
    path = ledger_path(params)
    ledger = read_ledger(path)
    with _explained(f"listing S3 landing {ctx.location}", ctx):
        listing = compare(cfg, client, ledger)
    by_partition: dict[Path, list[LandingObject]] = {}
    for obj in listing.pending:
        by_partition.setdefault(obj.rel.parent, []).append(obj)
    for rel, objects in sorted(by_partition.items()):
        land_partition(client, cfg, objects, landing, ctx)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for obj in objects:
            ledger[ledger_key(cfg, obj)] = {
                "etag": obj.etag,
                "size": obj.size,
                "landed": str(obj.rel),
                "ingested_at": now,
            }
        write_ledger(path, ledger)
        log.info("landed %s (%d file(s))", rel, len(objects))
    if listing.ignored:
        log.warning(
            "ignored %d key(s) not laid out as <dataset>/date=YYYY-MM-DD/part-*.csv|parquet, "
            "e.g. %s",
            len(listing.ignored),
            listing.ignored[:3],
        )
    return {
        "source": "s3",
        "location": listing.location,
        "endpoint": ctx.endpoint,
        "new_objects": len(listing.new),
        "changed_objects": len(listing.changed),
        "unchanged_objects": len(listing.unchanged),
        "landed": [str(o.rel) for o in listing.pending],
        "reuploaded": [o.key for o in listing.changed],
        "partitions": [str(rel) for rel in sorted(by_partition)],
        "ignored": listing.ignored[:MAX_IGNORED_LISTED],
        "ledger": str(path),
    }
