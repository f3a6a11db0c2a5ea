"""Dynamic micro-batching: concurrent requests share one forward pass.

Each request submits its inputs (a list: several texts, or one history) and awaits its results.
One collector task per model takes what is queued, up to ``max_batch_size`` inputs (a request is
never split; one larger than the limit runs alone), and runs the batch in the model's single
worker thread, so the event loop never waits on torch. While the worker is busy, new requests
queue up and form the next batch: under load, batches grow by themselves.

Waiting: a request that finds nobody else queued runs at once (an idle single request never pays
``max_wait_ms``). When others are queued with it (concurrent traffic), the batch waits up to
``max_wait_ms`` after its first request arrived for more company, then runs.

A batch that fails is rerun request by request, so one input that breaks the model fails only
its own request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """The model behind this batcher was retired before the request was queued."""


@dataclass
class _Entry(Generic[T, R]):
    items: list[T]
    future: asyncio.Future[list[R]]
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher(Generic[T, R]):
    """Groups concurrent ``submit`` calls into calls of ``predict(items) -> results`` (same
    length, same order), run in a worker thread of its own."""

    def __init__(
        self,
        predict: Callable[[list[T]], list[R]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        name: str = "model",
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.name = name
        self.on_batch = on_batch
        self.batches = 0
        self._queue: deque[_Entry[T, R]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")

    async def submit(self, items: Sequence[T]) -> list[R]:
        """The results of ``items``, computed in a batch with whatever else is queued."""
        if self._closing:
            raise BatcherClosed(f"{self.name}: batcher closed")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._collect(), name=f"batcher-{self.name}")
        assert self._wake is not None
        entry: _Entry[T, R] = _Entry(list(items), loop.create_future())
        self._queue.append(entry)
        self._wake.set()
        return await entry.future

    def _take(self, batch: list[_Entry[T, R]], size: int) -> int:
        """Move queued entries into ``batch`` while they fit; returns the new input count."""
        while self._queue and size + len(self._queue[0].items) <= self.max_batch_size:
            entry = self._queue.popleft()
            batch.append(entry)
            size += len(entry.items)
        return size

    async def _next_batch(self) -> list[_Entry[T, R]]:
        assert self._wake is not None
        first = self._queue.popleft()
        batch = [first]
        size = self._take(batch, len(first.items))
        if len(batch) == 1 and not self._queue:
            return batch  # idle: nobody to wait for
        deadline = first.arrived + self.max_wait_s
        while size < self.max_batch_size and not self._queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                break
            size = self._take(batch, size)
        return batch

    async def _collect(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = await self._next_batch()
            batch = [e for e in batch if not e.future.done()]  # callers that gave up
            try:
                if batch:
                    await self._run(loop, batch)
            except Exception as exc:  # a bug here must fail these requests, not hang them
                log.exception("%s: batch failed", self.name)
                for entry in batch:
                    _resolve(entry, exc=exc)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Entry[T, R]]) -> None:
        items = [item for entry in batch for item in entry.items]
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(len(items))
        try:
            results = await loop.run_in_executor(self._executor, self._checked, items)
        except Exception as exc:
            if len(batch) == 1:
                _resolve(batch[0], exc=exc)
                return
            log.warning(
                "%s: a batch of %d requests failed (%s); rerunning them one by one",
                self.name,
                len(batch),
                exc,
            )
            for entry in batch:
                await self._run(loop, [entry])
            return
        start = 0
        for entry in batch:
            _resolve(entry, results[start : start + len(entry.items)])
            start += len(entry.items)

    def _checked(self, items: list[T]) -> list[R]:
        results = list(self.predict(items))
        if len(results) != len(items):
            raise RuntimeError(f"{self.name}: {len(results)} results for {len(items)} inputs")
        return results

    async def aclose(self) -> None:
        """Finish what is queued, then stop the collector and the worker thread."""
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            await self._task
        self._executor.shutdown(wait=False)


def _resolve(
    entry: _Entry[Any, Any], results: list[Any] | None = None, exc: BaseException | None = None
) -> None:
    if entry.future.done():
        return
    if exc is not None:
        entry.future.set_exception(exc)
    else:
        entry.future.set_result(results or [])
