"""MLflow registry promotion with rollback: aliases ``champion`` / ``previous-champion``.

MLflow keeps no alias history, so every promotion or rollback appends one registered-model tag
``shopflow.history.<utc time>.<random>``; unique keys make the history append-only and safe for
concurrent writers (nobody rewrites a shared JSON blob). Moving the two aliases and writing the
history entry happen under a lease held as a registered-model tag (claim, wait, read back =
compare-and-set), so two racing promotions are serialised and leave one consistent champion.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.core.errors import ShopflowError, StackError
from ml.stack.model_store import (
    CHAMPION,
    PREVIOUS,
    get_alias,
    load_model,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


log = logging.getLogger(__name__)

HISTORY_PREFIX = "shopflow.history."
LOCK_TAG = "shopflow.promotion_lock"


class PromotionError(ShopflowError):
    """A version cannot become champion (it does not load or predict), or nothing to roll back."""

    exit_code = 5


class LockTimeout(ShopflowError):
    """Another promotion held the registry lease for too long."""

    exit_code = 6


# ----------------------------------------------------------------------------- smoke test


def contract_example(family: str) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """A small input honouring the family's pyfunc contract (ml.core.schemas)."""
    if family == "intent":
        return pd.DataFrame({"text": ["where is my order", "I want a refund"]}), None
    return pd.DataFrame({"history": [["unknown-item"], []]}), {"k": 5}


def smoke_test(name: str, version: str, family: str) -> dict[str, Any]:
    """Load the version from the registry and predict its input example (the logged one if any,
    else a contract example); check the output columns. Raise PromotionError on any failure,
    StackError when the artifact store cannot be used (credentials, endpoint): either way
    before any alias moves."""
    from ml.core import schemas

    uri = f"models:/{name}/{version}"
    try:
        model = load_model(uri)
    except StackError as exc:
        raise StackError(f"{exc} ({name}: champion and previous-champion unchanged)") from exc
    except Exception as exc:  # any load failure (missing artifact, bad pickle) blocks promotion
        raise PromotionError(f"{uri} does not load from the registry: {exc}") from exc
    data, call_params = contract_example(family)
    example = getattr(model, "input_example", None)
    expected_in = (
        schemas.INTENT_PYFUNC_INPUT if family == "intent" else (schemas.RECOMMENDER_PYFUNC_INPUT)
    )
    if isinstance(example, pd.DataFrame) and set(expected_in) <= set(example.columns):
        data = example
    try:
        out = model.predict(data, params=call_params) if call_params else model.predict(data)
    except Exception as exc:
        raise PromotionError(f"{uri} loads but fails to predict its input example: {exc}") from exc
    expected_out = (
        schemas.INTENT_PYFUNC_OUTPUT if family == "intent" else (schemas.RECOMMENDER_PYFUNC_OUTPUT)
    )
    if not isinstance(out, pd.DataFrame) or not set(expected_out) <= set(out.columns):
        got = list(out.columns) if isinstance(out, pd.DataFrame) else type(out).__name__
        raise PromotionError(
            f"{uri} output breaks the {family} contract: expected columns "
            f"{list(expected_out)}, got {got}"
        )
    if len(out) != len(data):
        raise PromotionError(f"{uri} returned {len(out)} rows for {len(data)} inputs")
    return {"rows": len(data)}


# ----------------------------------------------------------------------------- lease


class RegistryLease:
    """Mutual exclusion through a registered-model tag: claim, wait ``settle``, read back.

    Two claims written close together both read back the last writer, so only one proceeds; an
    expired lease (a crashed holder) is taken over after ``ttl`` seconds.
    """

    def __init__(
        self,
        client: MlflowClient,
        name: str,
        ttl: float = 60.0,
        timeout: float = 120.0,
        settle: float = 0.3,
    ):
        self.client, self.name = client, name
        self.ttl, self.timeout, self.settle = ttl, timeout, settle
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _current(self) -> dict[str, Any] | None:
        raw = self.client.get_registered_model(self.name).tags.get(LOCK_TAG)
        if not raw:
            return None
        try:
            return dict(json.loads(raw))
        except ValueError:
            return None

    def held(self) -> bool:
        current = self._current()
        return current is not None and current.get("owner") == self.owner

    def __enter__(self) -> RegistryLease:
        from mlflow.exceptions import MlflowException

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            current = self._current()
            if current is None or current.get("expires", 0) < time.time():
                claim = {"owner": self.owner, "expires": time.time() + self.ttl}
                try:
                    self.client.set_registered_model_tag(self.name, LOCK_TAG, json.dumps(claim))
                except MlflowException:
                    # A concurrent claim hit the store at the same moment (e.g. a unique-key
                    # conflict on the tag row): we lost this round, back off and look again.
                    claimed = False
                else:
                    time.sleep(self.settle)
                    claimed = self.held()
                if claimed:
                    return self
            time.sleep(self.settle * (0.5 + uuid.uuid4().int % 100 / 100))
        raise LockTimeout(
            f"registered model {self.name!r}: promotion lease busy for "
            f"{self.timeout:.0f}s (tag {LOCK_TAG}); retry or delete a stale tag"
        )

    def __exit__(self, *exc: object) -> None:
        if self.held():
            self.client.delete_registered_model_tag(self.name, LOCK_TAG)


# ----------------------------------------------------------------------------- history


def _append_history(
    client: MlflowClient,
    name: str,
    action: str,
    *,
    from_version: str | None,
    to_version: str,
    reason: str,
    pipeline_run: str | None,
) -> None:
    """One event per tag key (timestamp + random suffix): appends never overwrite each other."""
    stamp = datetime.now(UTC)
    event = {
        "when": stamp.isoformat(),
        "model": name,
        "user": getpass.getuser(),
        "action": action,
        "from_version": from_version,
        "to_version": to_version,
        "reason": reason,
        "pipeline_run": pipeline_run or os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
    }
    key = f"{HISTORY_PREFIX}{stamp.strftime('%Y%m%dT%H%M%S%fZ')}.{uuid.uuid4().hex[:8]}"
    client.set_registered_model_tag(name, key, json.dumps(event, sort_keys=True))


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """All promotion/rollback events of a registered model, oldest first."""
    tags = client.get_registered_model(name).tags
    keys = sorted(k for k in tags if k.startswith(HISTORY_PREFIX))
    return [json.loads(tags[k]) for k in keys]


def status(client: MlflowClient, name: str) -> dict[str, Any]:
    """Champion, previous champion, every version and the latest event."""
    model = client.get_registered_model(name)
    versions = client.search_model_versions(f"name='{name}'")
    events = history(client, name)
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    return {
        "model": name,
        "aliases": aliases,
        "champion": aliases.get(CHAMPION),
        "previous_champion": aliases.get(PREVIOUS),
        "versions": sorted(int(v.version) for v in versions),
        "last_event": events[-1] if events else None,
    }


# ----------------------------------------------------------------------------- promote / rollback


def promote(
    client: MlflowClient,
    name: str,
    version: str | int,
    family: str,
    *,
    reason: str = "",
    pipeline_run: str | None = None,
) -> dict[str, Any]:
    """Make ``version`` the champion after it loads and predicts; the old one becomes
    previous-champion. Promoting the current champion again is a no-op."""
    version = str(version)
    current = get_alias(client, name, CHAMPION)
    if current is not None and str(current.version) == version:
        return {
            "model": name,
            "version": version,
            "changed": False,
            "message": f"v{version} is already the champion",
        }
    smoke_test(name, version, family)
    with RegistryLease(client, name):
        # Re-read inside the lease: a racing promotion may have moved the alias meanwhile.
        current = get_alias(client, name, CHAMPION)
        if current is not None and str(current.version) == version:
            return {
                "model": name,
                "version": version,
                "changed": False,
                "message": f"v{version} is already the champion",
            }
        previous = str(current.version) if current is not None else None
        if previous is not None:
            client.set_registered_model_alias(name, PREVIOUS, previous)
        client.set_registered_model_alias(name, CHAMPION, version)
        now = datetime.now(UTC).isoformat()
        client.set_model_version_tag(name, version, "promoted_at", now)
        _append_history(
            client,
            name,
            "promote",
            from_version=previous,
            to_version=version,
            reason=reason,
            pipeline_run=pipeline_run,
        )
    log.info("%s: champion v%s (was %s)", name, version, previous)
    return {"model": name, "version": version, "previous": previous, "changed": True}


def rollback(
    client: MlflowClient,
    name: str,
    family: str,
    *,
    reason: str = "",
    pipeline_run: str | None = None,
) -> dict[str, Any]:
    """Restore previous-champion as champion in one step. The new previous-champion is whatever
    preceded the restored version in the history (none -> alias removed)."""
    target = get_alias(client, name, PREVIOUS)
    if target is None:
        raise PromotionError(f"{name}: no {PREVIOUS} alias, nothing to roll back to")
    smoke_test(name, str(target.version), family)
    with RegistryLease(client, name):
        target = get_alias(client, name, PREVIOUS)
        current = get_alias(client, name, CHAMPION)
        if target is None:
            raise PromotionError(f"{name}: {PREVIOUS} vanished during rollback")
        restored = str(target.version)
        demoted = str(current.version) if current is not None else None
        before = None
        for event in reversed(history(client, name)):
            if event.get("to_version") == restored and event.get("from_version") != demoted:
                before = event.get("from_version")
                break
        client.set_registered_model_alias(name, CHAMPION, restored)
        if before is not None:
            client.set_registered_model_alias(name, PREVIOUS, before)
        else:
            client.delete_registered_model_alias(name, PREVIOUS)
        if demoted is not None:
            client.set_model_version_tag(
                name, demoted, "rolled_back_at", datetime.now(UTC).isoformat()
            )
        _append_history(
            client,
            name,
            "rollback",
            from_version=demoted,
            to_version=restored,
            reason=reason,
            pipeline_run=pipeline_run,
        )
    log.info("%s: rolled back v%s -> v%s", name, demoted, restored)
    return {"model": name, "champion": restored, "demoted": demoted, "previous": before}
