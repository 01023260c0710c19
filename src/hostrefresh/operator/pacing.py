"""Start pacing: at most so many refreshes start per second, first come first served.

A refresh's first seconds are its busiest for the API server: the operator grants it, marks the node
and mirrors the quick first steps, and the agent reports each of them. A hundred refreshes granted in
the same instant (a plan with ``maxUnavailable: 100``, or a script creating objects) put thousands
of writes on the API server at once, and every report, also of refreshes long under way, then waits
in its queues for seconds. Spreading the starts costs each refresh a fraction of a second of its
minutes; the API server stays responsive.

A token bucket (``rate`` per second, ``burst`` at once) hands out start times in the order refreshes
ask for them: no refresh waits behind one that asked later. Pure bookkeeping with the time passed in.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta


class StartPacer:
    """Start times for refreshes that are otherwise ready to start."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0 (0: no pacing)")
        self.rate = rate
        self.burst = burst if burst is not None else max(1, math.ceil(rate))
        self._tokens = float(self.burst)
        self._at: datetime | None = None
        self._slots: dict[str, datetime] = {}

    def slot(self, name: str) -> datetime | None:
        """The start time reserved for ``name``, if any."""
        return self._slots.get(name)

    def peek(self, name: str, now: datetime) -> datetime:
        """The start ``reserve(name, now)`` would give, without reserving it."""
        if self.rate == 0:
            return now
        held = self._slots.get(name)
        if held is not None:
            return held
        tokens = self._refilled(now) - 1.0
        return now + timedelta(seconds=0.0 if tokens >= 0 else -tokens / self.rate)

    def reserve(self, name: str, now: datetime) -> datetime:
        """The earliest start for ``name``: now when a token is left, later in order of asking otherwise."""
        if self.rate == 0:
            return now
        held = self._slots.get(name)
        if held is not None:
            return held
        start = self.peek(name, now)
        self._tokens = self._refilled(now) - 1.0
        self._at = now if self._at is None else max(self._at, now)  # a late caller's older clock: no refill twice
        self._slots[name] = start
        return start

    def _refilled(self, now: datetime) -> float:
        """Tokens in the bucket at ``now``."""
        if self._at is None:
            return self._tokens
        elapsed = max((now - self._at).total_seconds(), 0.0)
        return min(float(self.burst), self._tokens + elapsed * self.rate)

    def available(self, now: datetime) -> int | None:
        """How many starts may be reserved at ``now`` without waiting (None: no pacing)."""
        if self.rate == 0:
            return None
        return max(0, math.floor(self._refilled(now)))

    def next_token_in(self, now: datetime) -> float:
        """Seconds until the next start may be reserved without waiting (0: one may now)."""
        if self.rate == 0:
            return 0.0
        missing = 1.0 - self._refilled(now)
        return max(missing, 0.0) / self.rate

    def delay(self, name: str, start: datetime) -> None:
        """Move ``name``'s start to ``start`` (it keeps its place: no new token is taken)."""
        self._slots[name] = start

    def forget(self, name: str) -> None:
        """``name`` started or is gone; its reservation is no longer needed."""
        self._slots.pop(name, None)
