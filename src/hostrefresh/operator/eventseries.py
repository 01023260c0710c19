"""Repeats of an Event become one Event with a count (pure: which write to make; ``kube.EventRecorder``
makes it).

The operator posts core/v1 Events (``objects.event_body``). A repeat is an Event with the same key as
one this process created: the same Event namespace, source and reporting component, involved object
(apiVersion, kind, namespace, name, uid, fieldPath; not its resourceVersion, which moves with every
write) and the same type, reason and message, as client-go's EventCorrelator keys them. A repeat
observed within ``SERIES_WINDOW`` of the previous observation updates the Event created first instead
of creating another one:

- core/v1 ``count`` and ``lastTimestamp`` (what ``kubectl describe`` reads: "x3 over 2m"), and
- ``series.count`` and ``series.lastObservedTime`` (what ``kubectl events`` and events.k8s.io/v1
  readers read): as client-go's events broadcaster does, the first repeat creates the series, with
  count 2.

A repeat after a longer silence starts a new Event, as an events.k8s.io series ends 6 minutes after its
last observation. The log of created Events is in memory and bounded (``CACHE_SIZE`` keys, the least
recently observed dropped first, as client-go's LRU): after a restart, or for a key dropped, a repeat
creates a new Event, which is acceptable; it never fails.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: A repeat within this time of the last observation joins the Event (events.k8s.io's series end).
SERIES_WINDOW = timedelta(minutes=6)
#: Keys remembered at most (client-go's EventCorrelator keeps 4096).
CACHE_SIZE = 4096

EventKey = tuple[str, ...]


def event_key(body: Mapping[str, Any]) -> EventKey:
    """What makes two Events the same Event (the involved object's resourceVersion does not)."""
    ref = body.get("involvedObject") or {}
    source = body.get("source") or {}
    meta = body.get("metadata") or {}
    return (
        str(meta.get("namespace") or ""),
        str(source.get("component") or ""),
        str(source.get("host") or ""),
        str(body.get("reportingComponent") or ""),
        str(ref.get("apiVersion") or ""),
        str(ref.get("kind") or ""),
        str(ref.get("namespace") or ""),
        str(ref.get("name") or ""),
        str(ref.get("uid") or ""),
        str(ref.get("fieldPath") or ""),
        str(body.get("type") or ""),
        str(body.get("reason") or ""),
        str(body.get("message") or ""),
    )


def observed_at(body: Mapping[str, Any]) -> datetime:
    """When the Event was observed: its ``eventTime`` (microseconds), else ``lastTimestamp``."""
    raw = body.get("eventTime") or body.get("lastTimestamp")
    if not raw:
        return datetime.now(UTC)
    when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Recorded:
    """An Event object this process created: its name, the count it has, when last observed."""

    name: str
    count: int
    last: datetime


def repeat_of(known: Recorded | None, now: datetime, window: timedelta = SERIES_WINDOW) -> Recorded | None:
    """The Event a repeat observed at ``now`` updates, with its count after this repeat; None: create a
    new Event (nothing known, or the last observation is more than ``window`` ago). A clock that went
    back does not move ``last`` back."""
    if known is None or now - known.last > window:
        return None
    return Recorded(known.name, known.count + 1, max(now, known.last))


def _stamp(when: datetime, micro: bool) -> str:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return when.astimezone(UTC).strftime(fmt)


def series_patch(repeat: Recorded) -> dict[str, Any]:
    """The merge patch that records ``repeat`` on its Event: core/v1 count and lastTimestamp, and the
    series (count, lastObservedTime), both with the count after this repeat."""
    return {
        "count": repeat.count,
        "lastTimestamp": _stamp(repeat.last, micro=False),
        "series": {"count": repeat.count, "lastObservedTime": _stamp(repeat.last, micro=True)},
    }


class SeriesLog:
    """The Events this process created, by key, least recently observed first (bounded)."""

    def __init__(self, window: timedelta = SERIES_WINDOW, capacity: int = CACHE_SIZE) -> None:
        if capacity < 1:
            raise ValueError(f"SeriesLog capacity {capacity}: must be at least 1")
        self.window = window
        self.capacity = capacity
        self._known: OrderedDict[EventKey, Recorded] = OrderedDict()

    def __len__(self) -> int:
        return len(self._known)

    def repeat(self, key: EventKey, now: datetime) -> Recorded | None:
        """What ``repeat_of`` says for ``key`` (nothing is recorded until ``record``)."""
        return repeat_of(self._known.get(key), now, self.window)

    def record(self, key: EventKey, recorded: Recorded) -> None:
        """``key``'s Event now is ``recorded`` (created, or updated by a repeat)."""
        self._known[key] = recorded
        self._known.move_to_end(key)
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)

    def forget(self, key: EventKey) -> None:
        self._known.pop(key, None)
