"""Maintenance windows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hostrefresh.api.common import MaintenanceWindow
from hostrefresh.operator.windows import WindowError, any_window_open, window_open


def w(schedule: str, duration: str, tz: str = "UTC") -> MaintenanceWindow:
    return MaintenanceWindow(schedule=schedule, duration=duration, time_zone=tz)


@pytest.mark.parametrize(
    ("window", "now", "open_"),
    [
        (w("0 2 * * *", "4h"), datetime(2026, 11, 24, 3, 0, tzinfo=UTC), True),
        (w("0 2 * * *", "4h"), datetime(2026, 11, 24, 2, 0, tzinfo=UTC), True),
        (w("0 2 * * *", "4h"), datetime(2026, 11, 24, 6, 0, tzinfo=UTC), False),
        (w("0 2 * * *", "4h"), datetime(2026, 11, 24, 1, 59, tzinfo=UTC), False),
        (w("0 22 * * *", "4h"), datetime(2026, 11, 25, 1, 0, tzinfo=UTC), True),  # crosses midnight
        (w("0 2 * * 1-5", "1h"), datetime(2026, 11, 29, 2, 30, tzinfo=UTC), False),  # a Sunday
        (w("0 2 * * *", "1h", "Europe/Berlin"), datetime(2026, 11, 24, 1, 30, tzinfo=UTC), True),
        (w("0 2 * * *", "1h", "Europe/Berlin"), datetime(2026, 11, 24, 2, 30, tzinfo=UTC), False),
    ],
)
def test_window_open(window: MaintenanceWindow, now: datetime, open_: bool) -> None:
    assert window_open(window, now) is open_


def test_no_windows_means_always() -> None:
    assert any_window_open([], datetime(2026, 1, 1, tzinfo=UTC))


def test_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(WindowError, match="timeZone 'Mars/Base'"):
        window_open(w("0 2 * * *", "1h", "Mars/Base"), datetime(2026, 1, 1, tzinfo=UTC))
