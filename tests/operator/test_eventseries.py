"""The pure decision behind Event aggregation: which Events are the same, when a repeat joins the Event
created first, and what the update writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hostrefresh.operator import objects
from hostrefresh.operator.eventseries import (
    SERIES_WINDOW,
    Recorded,
    SeriesLog,
    event_key,
    observed_at,
    repeat_of,
    series_patch,
)

T0 = datetime(2026, 12, 7, 10, 0, 0, 250000, tzinfo=UTC)


def _obj(rv: str = "1", name: str = "hr-a", uid: str = "u-1") -> dict[str, Any]:
    return {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "metadata": {"name": name, "uid": uid, "resourceVersion": rv},
    }


def _body(ref: dict[str, Any] | None = None, **change: str) -> dict[str, Any]:
    args = {"type_": "Warning", "reason": "DeadlineExceeded", "message": "phase Migrating exceeded its deadline"}
    args.update(change)
    return objects.event_body(ref or _obj(), args["type_"], args["reason"], args["message"], "default", "op-1", T0)


def test_the_involved_objects_resource_version_and_the_time_do_not_make_another_event() -> None:
    first = _body(_obj(rv="1"))
    later = objects.event_body(
        _obj(rv="99"),
        "Warning",
        "DeadlineExceeded",
        "phase Migrating exceeded its deadline",
        "default",
        "op-2",
        T0 + timedelta(seconds=30),
    )
    assert event_key(first) == event_key(later)  # reportingInstance (a new leader) does not either


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "StepFailed"},
        {"message": "phase Retiring exceeded its deadline"},
        {"type_": "Normal"},
    ],
)
def test_type_reason_or_message_make_another_event(change: dict[str, str]) -> None:
    assert event_key(_body()) != event_key(_body(None, **change))


def test_another_object_or_component_or_namespace_makes_another_event() -> None:
    base = _body()
    assert event_key(base) != event_key(_body(_obj(name="hr-b")))
    assert event_key(base) != event_key(_body(_obj(uid="u-2")))  # same name, recreated object
    other_component = {**base, "reportingComponent": "someone-else"}
    assert event_key(base) != event_key(other_component)
    other_ns = {**base, "metadata": {**base["metadata"], "namespace": "kube-system"}}
    assert event_key(base) != event_key(other_ns)


def test_observed_at_is_the_event_time_to_the_microsecond() -> None:
    assert observed_at(_body()) == T0


def test_nothing_known_creates() -> None:
    assert repeat_of(None, T0) is None


def test_the_first_repeat_makes_count_two_and_later_ones_count_on() -> None:
    created = Recorded("hr-a.abc", 1, T0)
    first = repeat_of(created, T0 + timedelta(seconds=5))
    assert first == Recorded("hr-a.abc", 2, T0 + timedelta(seconds=5))
    second = repeat_of(first, T0 + timedelta(seconds=9))
    assert second == Recorded("hr-a.abc", 3, T0 + timedelta(seconds=9))


def test_the_window_counts_from_the_last_observation_not_the_first() -> None:
    created = Recorded("e", 1, T0)
    at_edge = repeat_of(created, T0 + SERIES_WINDOW)
    assert at_edge is not None and at_edge.count == 2
    assert repeat_of(created, T0 + SERIES_WINDOW + timedelta(microseconds=1)) is None
    # Repeats every 5 minutes keep one Event going for longer than the window.
    kept = Recorded("e", 1, T0)
    for i in range(1, 5):
        nxt = repeat_of(kept, T0 + timedelta(minutes=5 * i))
        assert nxt is not None
        kept = nxt
    assert kept.count == 5


def test_a_clock_that_went_back_does_not_move_the_last_observation_back() -> None:
    repeat = repeat_of(Recorded("e", 3, T0), T0 - timedelta(seconds=2))
    assert repeat == Recorded("e", 4, T0)


def test_the_update_writes_count_and_series_together() -> None:
    patch = series_patch(Recorded("e", 2, T0))
    assert patch == {
        "count": 2,
        "lastTimestamp": "2026-12-07T10:00:00Z",
        "series": {"count": 2, "lastObservedTime": "2026-12-07T10:00:00.250000Z"},
    }


def test_the_log_is_bounded_and_drops_the_least_recently_observed() -> None:
    log = SeriesLog(capacity=2)
    a, b, c = (event_key(_body(reason=r)) for r in ("A", "B", "C"))
    log.record(a, Recorded("a", 1, T0))
    log.record(b, Recorded("b", 1, T0))
    log.record(a, Recorded("a", 2, T0 + timedelta(seconds=1)))  # a observed again: b is the oldest now
    log.record(c, Recorded("c", 1, T0))
    assert len(log) == 2
    assert log.repeat(b, T0) is None
    assert log.repeat(a, T0 + timedelta(seconds=2)) == Recorded("a", 3, T0 + timedelta(seconds=2))
    log.forget(a)
    assert log.repeat(a, T0) is None


def test_a_log_of_no_entries_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SeriesLog(capacity=0)
