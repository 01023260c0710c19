"""The operator's work queue: coalescing, delayed requeue, one pass per key at a time (fake time)."""

from __future__ import annotations

import asyncio

import pytest

from hostrefresh.operator.workqueue import FAILED_RETRY_MAX_SECONDS, WorkQueue, failed_retry, work


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _drain(queue: WorkQueue[str]) -> list[str]:
    taken = []
    while (key := queue.take()) is not None:
        taken.append(key)
    return taken


def test_adds_of_one_key_coalesce_into_one_pass(clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("t", clock)
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert _drain(queue) == ["a", "b"]
    assert queue.take() is None


def test_a_delayed_add_is_due_only_at_its_time_and_an_earlier_add_wins(clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("t", clock)
    queue.add("a", after=5.0)
    assert queue.take() is None
    assert queue.next_due_in() == pytest.approx(5.0)
    queue.add("a", after=10.0)  # later than pending: ignored
    assert queue.next_due_in() == pytest.approx(5.0)
    queue.add("a", after=1.0)  # sooner: wins
    clock.now += 1.0
    assert queue.take() == "a"
    queue.done("a")
    clock.now += 10.0
    assert queue.take() is None, "the superseded later entries do not come back"


def test_keys_come_out_in_due_order(clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("t", clock)
    queue.add("late", after=3.0)
    queue.add("soon", after=1.0)
    queue.add("now")
    clock.now += 5.0
    assert _drain(queue) == ["now", "soon", "late"]


def test_a_key_is_never_taken_twice_at_once_and_an_add_meanwhile_is_kept(clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("t", clock)
    queue.add("a")
    assert queue.take() == "a"
    queue.add("a")  # an event while its pass runs
    queue.add("b")
    assert _drain(queue) == ["b"], "a is held by its worker"
    assert queue.next_due_in() is None, "nothing takeable is pending"
    queue.done("a")
    assert queue.next_due_in() == 0.0
    assert queue.take() == "a", "the add made during the pass gets a pass after it"


def test_forget_drops_a_pending_pass(clock: FakeClock) -> None:
    queue: WorkQueue[str] = WorkQueue("t", clock)
    queue.add("a", after=1.0)
    queue.forget("a")
    clock.now += 2.0
    assert queue.take() is None
    assert len(queue) == 0


async def test_workers_run_due_passes_and_requeue_as_asked() -> None:
    queue: WorkQueue[str] = WorkQueue("t")
    passes: list[str] = []
    running: set[str] = set()
    overlap: list[str] = []

    async def reconcile(key: str) -> float | None:
        if key in running:
            overlap.append(key)
        running.add(key)
        passes.append(key)
        await asyncio.sleep(0.01)
        running.discard(key)
        if key == "again" and passes.count("again") < 3:
            return 0.01
        if key == "boom" and passes.count("boom") == 1:
            raise RuntimeError("an API error")
        return None

    workers = asyncio.create_task(work(queue, reconcile, workers=4))
    try:
        for key in ("a", "again", "boom"):
            queue.add(key)
        for _ in range(3):
            queue.add("a")  # coalesce, or wait for the pass under way
        await asyncio.sleep(0.2)
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
    assert passes.count("again") == 3
    assert passes.count("a") == 1, "adds before its pass coalesce into it"
    assert passes.count("boom") == 1, "a failed pass is retried after a second, not at once"
    assert overlap == []


async def test_an_add_during_a_pass_gets_exactly_one_more_pass_after_it() -> None:
    queue: WorkQueue[str] = WorkQueue("t")
    passes: list[tuple[str, float]] = []
    inside = 0
    overlap = False

    async def reconcile(key: str) -> float | None:
        nonlocal inside, overlap
        inside += 1
        overlap = overlap or inside > 1
        passes.append((key, asyncio.get_running_loop().time()))
        if len(passes) == 1:
            for _ in range(3):
                queue.add(key)  # events while the pass runs: one more pass, after this one
            await asyncio.sleep(0.05)
        inside -= 1
        return None

    workers = asyncio.create_task(work(queue, reconcile, workers=4))
    try:
        queue.add("a")
        await asyncio.sleep(0.3)
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
    assert [k for k, _ in passes] == ["a", "a"]
    assert not overlap
    assert passes[1][1] - passes[0][1] >= 0.05, "the second pass starts after the first ended"


def test_failed_passes_back_off_up_to_a_minute() -> None:
    assert [failed_retry(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert failed_retry(30) == FAILED_RETRY_MAX_SECONDS


async def test_a_pass_cancelled_from_inside_keeps_its_key() -> None:
    queue: WorkQueue[str] = WorkQueue("t")
    passes: list[str] = []

    async def reconcile(key: str) -> float | None:
        passes.append(key)
        if len(passes) == 1:
            raise asyncio.CancelledError  # as a client's own timeout may raise it
        return None

    workers = asyncio.create_task(work(queue, reconcile, workers=1))
    try:
        queue.add("a")
        await asyncio.sleep(1.3)
    finally:
        workers.cancel()
        await asyncio.gather(workers, return_exceptions=True)
    assert passes == ["a", "a"], "retried after a second instead of dropped"
