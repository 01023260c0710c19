"""Start pacing: rate, burst, first come first served, no pacing at rate 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hostrefresh.operator.pacing import StartPacer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seconds(start: datetime) -> float:
    return round((start - T0).total_seconds(), 6)


def test_a_burst_starts_at_once_then_one_per_interval_in_order_of_asking() -> None:
    pacer = StartPacer(rate=10, burst=3)
    starts = [seconds(pacer.reserve(f"r{i}", T0)) for i in range(6)]
    assert starts == [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]


def test_a_reservation_is_kept_until_forgotten() -> None:
    pacer = StartPacer(rate=1, burst=1)
    pacer.reserve("a", T0)
    later = pacer.reserve("b", T0)
    assert seconds(later) == 1.0
    assert pacer.reserve("b", T0 + timedelta(seconds=0.5)) == later  # asking again changes nothing
    assert pacer.slot("b") == later
    pacer.forget("b")
    assert pacer.slot("b") is None


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    pacer = StartPacer(rate=2, burst=2)
    pacer.reserve("a", T0)
    pacer.reserve("b", T0)
    quiet = T0 + timedelta(seconds=60)  # a long quiet spell refills only up to the burst
    assert [seconds(pacer.reserve(n, quiet)) for n in "cde"] == [60.0, 60.0, 60.5]


def test_rate_zero_does_not_pace() -> None:
    pacer = StartPacer(rate=0)
    assert all(pacer.reserve(f"r{i}", T0) == T0 for i in range(100))


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        StartPacer(rate=-1)


def test_a_delayed_start_keeps_its_place_and_takes_no_new_token() -> None:
    pacer = StartPacer(rate=10, burst=1)
    pacer.reserve("a", T0)
    pacer.delay("a", T0 + timedelta(seconds=2))
    assert seconds(pacer.reserve("a", T0)) == 2.0  # asking again: the delayed slot
    assert seconds(pacer.reserve("b", T0)) == 0.1  # the next one's slot is unaffected
