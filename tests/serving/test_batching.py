"""The micro-batcher on its own (no HTTP): grouping, the idle fast path, failures."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ml.serving.batching import BatcherClosed, MicroBatcher


class Recorder:
    """predict(): doubles each input; remembers batch sizes and the thread it ran in."""

    def __init__(self, delay: float = 0.0, fail_on: object = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay, self.fail_on = delay, fail_on

    def __call__(self, items: list[int]) -> list[int]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"cannot score {self.fail_on}")
        time.sleep(self.delay)
        return [2 * i for i in items]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_one_forward_pass() -> None:
    model = Recorder()

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=20, name="t")
        out = await asyncio.gather(*(batcher.submit([i, 100 + i]) for i in range(8)))
        await batcher.aclose()
        return out

    results = run(main())
    assert results == [[2 * i, 200 + 2 * i] for i in range(8)]
    assert [len(b) for b in model.batches] == [16]
    assert model.threads and all(t.startswith("batch-t") for t in model.threads)


def test_batches_never_exceed_the_limit_and_keep_requests_whole() -> None:
    model = Recorder()

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(model, max_batch_size=5, max_wait_ms=20, name="t")
        sizes = [2, 2, 2, 3, 1, 7]  # the 7 is over the limit: it runs alone
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        out = await asyncio.gather(
            *(batcher.submit(list(range(s, s + n))) for s, n in zip(starts, sizes, strict=True))
        )
        await batcher.aclose()
        return out

    results = run(main())
    assert [r for chunk in results for r in chunk] == [2 * i for i in range(17)]
    assert all(len(b) <= 5 for b in model.batches if len(b) != 7)
    assert [len(b) for b in model.batches if len(b) > 5] == [7]
    assert sum(len(b) for b in model.batches) == 17


def test_an_idle_single_request_does_not_wait_for_company() -> None:
    model = Recorder()

    async def main() -> float:
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=1000, name="t")
        await batcher.submit([1])  # starts the collector
        started = time.perf_counter()
        for i in range(5):
            assert await batcher.submit([i]) == [2 * i]
        elapsed = (time.perf_counter() - started) / 5
        await batcher.aclose()
        return elapsed

    assert run(main()) < 0.1  # max_wait is 1 s: an idle request must not pay it


def test_requests_queued_behind_a_busy_worker_form_the_next_batch() -> None:
    model = Recorder(delay=0.2)

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=0, name="t")
        first = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0.05)  # the worker is busy with [0]
        rest = await asyncio.gather(*(batcher.submit([i]) for i in range(1, 11)))
        assert await first == [0] and rest == [[2 * i] for i in range(1, 11)]
        await batcher.aclose()

    run(main())
    assert [len(b) for b in model.batches] == [1, 10]


def test_a_failing_input_fails_only_its_own_request() -> None:
    model = Recorder(fail_on=13)

    async def main() -> list[object]:
        batcher = MicroBatcher(model, max_batch_size=32, max_wait_ms=20, name="t")
        out = await asyncio.gather(
            batcher.submit([1]), batcher.submit([13]), batcher.submit([2]), return_exceptions=True
        )
        await batcher.aclose()
        return out

    ok1, bad, ok2 = run(main())
    assert ok1 == [2] and ok2 == [4]
    assert isinstance(bad, ValueError) and "cannot score 13" in str(bad)


def test_a_wrong_number_of_results_is_an_error_not_a_misaligned_answer() -> None:
    async def main() -> None:
        batcher = MicroBatcher(lambda items: items[:-1], max_batch_size=8, max_wait_ms=0)
        with pytest.raises(RuntimeError, match="1 results for 2 inputs"):
            await batcher.submit([1, 2])
        await batcher.aclose()

    run(main())


def test_close_finishes_queued_work_then_refuses_new_requests() -> None:
    model = Recorder(delay=0.05)

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch_size=1, max_wait_ms=0, name="t")
        pending = [asyncio.create_task(batcher.submit([i])) for i in range(4)]
        await asyncio.sleep(0)
        await batcher.aclose()
        assert [t.result() for t in pending] == [[0], [2], [4], [6]]
        with pytest.raises(BatcherClosed):
            await batcher.submit([5])

    run(main())
