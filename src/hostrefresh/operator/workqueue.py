"""One named, keyed, coalescing work queue with delayed requeue (after controller-runtime's workqueue).

Why: every reason to look at an object again (a watch event, our own write, a child created, a start
slot coming due, the periodic re-check) becomes ``add(key, after)``. Adds of a key coalesce into one
pass at the earliest time asked for, so a burst of events costs one reconcile of the newest version.
A key is never processed by two workers at once; one added while it is processed is processed again
after, so no change is missed. The clock is passed in, so the queue's rules are tested with fake time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger("hostrefresh.operator")

#: One pass over a key; returns the seconds after which the key wants another pass (None: only on events).
Reconcile = Callable[[K], Awaitable[float | None]]


class WorkQueue(Generic[K]):
    """Keys due at a time; ``take()`` hands out due keys not being processed, ``done()`` gives them back."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._due: dict[K, float] = {}  # key -> when its next pass is due (the earliest asked for)
        self._heap: list[tuple[float, int, K]] = []  # (due, order, key); stale entries skipped on pop
        self._order = itertools.count()
        self._processing: set[K] = set()
        self._changed = asyncio.Event()

    def add(self, key: K, after: float = 0.0) -> None:
        """Ask for a pass of ``key`` in ``after`` seconds (sooner if one is already due sooner)."""
        at = self._clock() + max(after, 0.0)
        current = self._due.get(key)
        if current is not None and current <= at:
            return
        self._due[key] = at
        heapq.heappush(self._heap, (at, next(self._order), key))
        self._changed.set()

    def forget(self, key: K) -> None:
        """Drop a pending pass of ``key`` (the object is gone); a pass under way finishes."""
        self._due.pop(key, None)

    def take(self) -> K | None:
        """A key whose pass is due and that no worker holds, now held by the caller; None if none."""
        now = self._clock()
        deferred: list[tuple[float, int, K]] = []
        found: K | None = None
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            at, _, key = entry
            if self._due.get(key) != at:
                continue  # superseded by an earlier add, or forgotten
            if key in self._processing:
                deferred.append(entry)  # due again once its current pass is done
                continue
            del self._due[key]
            self._processing.add(key)
            found = key
            break
        for entry in deferred:
            heapq.heappush(self._heap, entry)
        return found

    def done(self, key: K) -> None:
        """The pass over ``key`` ended; a pass asked for meanwhile may now be taken."""
        self._processing.discard(key)
        if key in self._due:
            self._changed.set()

    def next_due_in(self) -> float | None:
        """Seconds until the earliest pending pass of a key no worker holds (None: nothing pending)."""
        now = self._clock()
        waiting = [at for key, at in self._due.items() if key not in self._processing]
        return max(min(waiting) - now, 0.0) if waiting else None

    def __len__(self) -> int:
        """Keys with a pass pending."""
        return len(self._due)

    async def get(self) -> K:
        """Wait for a due key (see ``take``)."""
        while True:
            self._changed.clear()
            key = self.take()
            if key is not None:
                return key
            wait = self.next_due_in()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)


async def work(queue: WorkQueue[K], reconcile: Reconcile[K], workers: int) -> None:
    """Run passes of due keys, at most ``workers`` at once, until cancelled.

    One dispatcher waits on the queue (no herd of idle workers woken by every add) and runs each pass
    as a task; a pass that raises is logged and retried, later after each failure in a row.
    """
    slots = asyncio.Semaphore(workers)
    running: set[asyncio.Task[None]] = set()
    failures: dict[K, int] = {}

    async def one(key: K) -> None:
        again: float | None = None
        try:
            again = await reconcile(key)
            failures.pop(key, None)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # shutting down
            again = FAILED_RETRY_SECONDS  # cancelled from inside (a client's timeout): not the end of the key
        except Exception:
            failures[key] = failures.get(key, 0) + 1
            again = failed_retry(failures[key])
            log.exception(
                "%s: reconcile of %s failed (%d in a row); again in %.0f s", queue.name, key, failures[key], again
            )
        finally:
            queue.done(key)
            slots.release()
        if again is not None:
            queue.add(key, again)

    try:
        while True:
            await slots.acquire()
            key = await queue.get()
            task = asyncio.create_task(one(key), name=f"{queue.name}:{key}")
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


#: A pass that raised is tried again after this long (an API error, usually gone by then), doubled for
#: each further failure in a row up to ``FAILED_RETRY_MAX_SECONDS``.
FAILED_RETRY_SECONDS = 1.0
FAILED_RETRY_MAX_SECONDS = 60.0


def failed_retry(failures: int) -> float:
    """Seconds before the next pass of a key whose last ``failures`` passes raised."""
    return min(FAILED_RETRY_SECONDS * 2.0 ** max(failures - 1, 0), FAILED_RETRY_MAX_SECONDS)
