"""Follows the registry: when an alias moves, load the new version, check it, swap it in.

One slot per (family, role): role ``champion`` follows ``serving.alias``, role ``shadow``
follows ``serving.shadow_alias`` (only with ``serving.shadow``). Every ``poll_interval_s`` (and on
POST /v1/admin/reload) each slot reads its alias; a new version is loaded and smoke-checked in a
worker thread (the event loop keeps serving), then swapped in with one assignment on the event
loop. A request holds the model it started with (``ServedModel.inflight``), so in-flight
requests finish on the old version, whose batcher is closed only once they are done.

A version that does not load or whose output breaks the contract is refused: never served, not
retried on later polls (versions are immutable; a forced reload retries), and named by /readyz
and /metrics while its alias points at it. The version it would have replaced keeps serving.

The replaced version stays loaded as a standby, so a rollback to it (ml.release.registry
.rollback) is a swap, not a load.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ml.core.families import get_family
from ml.serving.batching import MicroBatcher
from ml.serving.loading import (
    ContractError,
    ServedModel,
    load_served_model,
    smoke_check,
    warm_up,
)

if TYPE_CHECKING:
    from ml.core.config import Params
    from ml.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

CHAMPION_ROLE = "champion"
SHADOW_ROLE = "shadow"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


@dataclass
class Refusal:
    version: str
    kind: str  # load_failed | contract_broken | smoke_failed
    reason: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class _Refused(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


@dataclass(eq=False)
class Slot:
    family: str
    role: str
    alias: str
    model_name: str
    current: ServedModel | None = None
    standby: ServedModel | None = None
    aliased_version: str | None = None  # what the alias pointed at on the last check
    problem: str | None = "not checked yet"
    refused: dict[str, Refusal] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.family} ({self.role}, alias {self.alias!r} of {self.model_name})"

    def refusal(self) -> Refusal | None:
        """The refusal of the version the alias points at now, if any."""
        return self.refused.get(self.aliased_version or "")


@contextmanager
def using(served: ServedModel) -> Iterator[ServedModel]:
    """Mark ``served`` busy for one request (event-loop thread only, so no lock)."""
    served.inflight += 1
    try:
        yield served
    finally:
        served.inflight -= 1


class ModelWatcher:
    """The served models and the poller that keeps them in step with the registry."""

    def __init__(
        self,
        params: Params,
        metrics: ServingMetrics,
        *,
        loader: Callable[..., ServedModel] = load_served_model,
        smoke: Callable[[ServedModel], Any] = smoke_check,
    ) -> None:
        self.params = params
        self.cfg = params.serving
        self.metrics = metrics
        self.loader, self.smoke = loader, smoke
        self.slots: dict[tuple[str, str], Slot] = {}
        for family in self.cfg.families:
            name = get_family(family).model_name(params)
            self.slots[(family, CHAMPION_ROLE)] = Slot(family, CHAMPION_ROLE, self.cfg.alias, name)
            if self.cfg.shadow:
                self.slots[(family, SHADOW_ROLE)] = Slot(
                    family, SHADOW_ROLE, self.cfg.shadow_alias, name
                )
        self.last_check: datetime | None = None
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    # --------------------------------------------------------------------- reading

    def model(self, family: str, role: str = CHAMPION_ROLE) -> ServedModel | None:
        slot = self.slots.get((family, role))
        return slot.current if slot is not None else None

    def readiness(self) -> tuple[bool, list[str]]:
        """(every family has a champion loaded, reasons worth an operator's attention)."""
        ready, reasons = True, []
        for slot in self.slots.values():
            refusal = slot.refusal()
            serving = f"v{slot.current.version}" if slot.current else "nothing"
            if refusal is not None:
                reasons.append(
                    f"{slot.family} ({slot.role}): v{refusal.version} behind alias "
                    f"{slot.alias!r} refused "
                    f"({refusal.kind}): {refusal.reason}; serving {serving}"
                )
            elif slot.problem:
                reasons.append(f"{slot.label}: {slot.problem}; serving {serving}")
            if slot.role == CHAMPION_ROLE and slot.current is None:
                ready = False
                if refusal is None and not slot.problem:
                    reasons.append(f"{slot.label}: no model loaded")
        return ready, reasons

    def describe(self) -> list[dict[str, Any]]:
        """/v1/models: one entry per family with its champion and shadow."""
        out = []
        for family in self.cfg.families:
            slot = self.slots[(family, CHAMPION_ROLE)]
            shadow = self.slots.get((family, SHADOW_ROLE))
            entry: dict[str, Any] = {"family": family, "name": slot.model_name, "alias": slot.alias}
            entry.update(slot.current.info() if slot.current else {"version": None})
            refusal = slot.refusal()
            entry["refused"] = (
                {"version": refusal.version, "kind": refusal.kind, "reason": refusal.reason}
                if refusal
                else None
            )
            entry["shadow"] = shadow.current.info() if shadow and shadow.current else None
            out.append(entry)
        return out

    # --------------------------------------------------------------------- checking

    def _registry(self) -> Any:
        if self._client is None:
            from ml.stack.model_store import get_client

            self._client = get_client(self.params)
        return self._client

    def _read_alias(self, slot: Slot) -> Any:
        from ml.stack.model_store import get_alias

        return get_alias(self._registry(), slot.model_name, slot.alias)

    def _load_and_check(self, version: Any, slot: Slot) -> ServedModel:
        """Worker thread: load and smoke-check; failures become _Refused with their kind."""
        try:
            served = self.loader(version, slot.family, slot.alias, self.params)
        except Exception as exc:
            raise _Refused("load_failed", f"does not load: {_first_line(exc)}") from exc
        try:
            self.smoke(served)
        except ContractError as exc:
            raise _Refused("contract_broken", str(exc)) from exc
        except Exception as exc:
            raise _Refused(
                "smoke_failed", f"fails on its input example: {_first_line(exc)}"
            ) from exc
        return served

    async def check(self, *, force: bool = False) -> list[dict[str, Any]]:
        """Read every alias now and swap what moved; returns what changed. ``force`` also
        retries versions refused earlier."""
        async with self._lock:
            changes = []
            for slot in self.slots.values():
                change = await self._check_slot(slot, force)
                if change is not None:
                    changes.append(change)
            self.last_check = datetime.now(UTC)
            return changes

    # long function: one linear story per slot (read alias, skip, standby, load, refuse, swap)
    async def _check_slot(self, slot: Slot, force: bool) -> dict[str, Any] | None:
        try:
            version = await asyncio.to_thread(self._read_alias, slot)
        except Exception as exc:  # the registry is down: keep serving what we have
            slot.problem = f"registry not readable: {_first_line(exc)}"
            return None
        if version is None:
            # No challenger to shadow is a normal state, not a problem to report.
            missing = f"no version behind alias {slot.alias!r}"
            slot.problem = missing if slot.role == CHAMPION_ROLE else None
            slot.aliased_version = None
            if slot.role == SHADOW_ROLE and slot.current is not None:
                old = slot.current
                self._demote(slot)
                return self._change(slot, "removed", old, None)
            return None
        slot.problem = None
        number = str(version.version)
        previous_aliased, slot.aliased_version = slot.aliased_version, number
        if previous_aliased != number and previous_aliased in slot.refused:
            self._clear_refused_metric(slot, slot.refused[previous_aliased])
        current = slot.current
        if current is not None and current.version == number:
            return None
        if number in slot.refused and not force:
            refusal = slot.refused[number]  # the gauge again, should the alias have come back
            self.metrics.refused.labels(slot.family, slot.role, number, refusal.kind).set(1)
            return None
        if slot.standby is not None and slot.standby.version == number:
            self._activate(slot, slot.standby)
            self.metrics.reloads.labels(slot.family, slot.role, "swapped").inc()
            return self._change(slot, "swapped", current, number, note="from standby")
        loaded = self._loaded_elsewhere(slot, number)
        if loaded is not None:  # e.g. the shadowed challenger was just promoted: no reload
            self._activate(slot, loaded)
            self.metrics.reloads.labels(slot.family, slot.role, "swapped").inc()
            return self._change(slot, "swapped", current, number, note="already loaded")
        log.info("%s: loading v%s", slot.label, number)
        try:
            served = await asyncio.to_thread(self._load_and_check, version, slot)
        except _Refused as exc:
            refusal = Refusal(number, exc.kind, exc.reason)
            if number in slot.refused:
                self._clear_refused_metric(slot, slot.refused[number])
            slot.refused[number] = refusal
            self.metrics.reloads.labels(slot.family, slot.role, "refused").inc()
            self.metrics.reload_failures.labels(slot.family, slot.role, number, exc.kind).inc()
            self.metrics.refused.labels(slot.family, slot.role, number, exc.kind).set(1)
            log.error("%s: v%s refused (%s): %s", slot.label, number, exc.kind, exc.reason)
            return self._change(slot, "refused", current, number, reason=exc.reason)
        if number in slot.refused:  # a forced retry worked
            self._clear_refused_metric(slot, slot.refused.pop(number))
        self._activate(slot, served)
        self.metrics.reloads.labels(slot.family, slot.role, "swapped").inc()
        log.info("%s: now serving v%s (%s)", slot.label, number, served.variant)
        return self._change(slot, "swapped", current, number)

    def _loaded_elsewhere(self, slot: Slot, version: str) -> ServedModel | None:
        """A copy (own alias, own batcher, same loaded weights) of ``version`` when another
        slot of the family already holds it, checked."""
        for other in self.slots.values():
            if other is slot or other.family != slot.family:
                continue
            for served in (other.current, other.standby):
                if served is not None and served.version == version:
                    return replace(served, alias=slot.alias, batcher=None, inflight=0)
        return None

    def _change(
        self, slot: Slot, outcome: str, old: ServedModel | None, new: str | None, **extra: Any
    ) -> dict[str, Any]:
        return {
            "family": slot.family,
            "role": slot.role,
            "outcome": outcome,
            "from_version": old.version if old else None,
            "to_version": new,
            **extra,
        }

    def _clear_refused_metric(self, slot: Slot, refusal: Refusal) -> None:
        with suppress(KeyError):
            self.metrics.refused.remove(slot.family, slot.role, refusal.version, refusal.kind)

    # --------------------------------------------------------------------- swapping

    def _activate(self, slot: Slot, served: ServedModel) -> None:
        """The swap: one assignment on the event loop, so a request sees old or new, never half."""
        if served.batcher is None:
            served.batcher = MicroBatcher(
                served.predict,
                max_batch_size=self.cfg.max_batch_size,
                max_wait_ms=self.cfg.max_wait_ms,
                name=f"{slot.family}-v{served.version}-{slot.role}",
                on_batch=self.metrics.batch_size.labels(
                    slot.family, served.version, slot.role
                ).observe,
            )
        old = slot.current
        slot.current = served
        self._set_loaded_metric(slot, served, 1)
        if old is not None and old is not served:
            self._set_loaded_metric(slot, old, None)
            evicted, slot.standby = slot.standby, old
            if evicted is not None and evicted is not served:
                self._retire(evicted)
        if slot.standby is served:
            slot.standby = old

    def _demote(self, slot: Slot) -> None:
        old, slot.current = slot.current, None
        if old is not None:
            self._set_loaded_metric(slot, old, None)
            self._retire(old)

    def _set_loaded_metric(self, slot: Slot, served: ServedModel, value: int | None) -> None:
        labels = (slot.family, slot.role, served.name, served.version, served.variant)
        if value is None:
            with suppress(KeyError):
                self.metrics.loaded.remove(*labels)
        else:
            self.metrics.loaded.labels(*labels).set(value)

    def _retire(self, served: ServedModel) -> None:
        async def retire() -> None:
            while served.inflight:
                await asyncio.sleep(0.05)
            if served.batcher is not None:
                await served.batcher.aclose()

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    # --------------------------------------------------------------------- polling

    async def _poll(self) -> None:
        # Imports first, in one thread: the same modules imported by two threads at once is
        # asking for trouble, and the first load needs them anyway.
        await asyncio.to_thread(warm_up, list(self.cfg.families))
        while True:
            try:
                changes = await self.check()
                if changes:
                    log.info("registry check: %s", changes)
            except Exception:  # the poller must outlive any one bad check
                log.exception("registry check failed")
            await asyncio.sleep(self.cfg.poll_interval_s)

    def start(self) -> None:
        """Begin polling (the first check loads the models) on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="registry-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for slot in self.slots.values():
            for served in (slot.current, slot.standby):
                if served is not None and served.batcher is not None:
                    await served.batcher.aclose()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
