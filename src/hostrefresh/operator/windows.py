"""Maintenance windows: cron start + duration in a time zone (croniter evaluates the cron part)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from hostrefresh.api.common import MaintenanceWindow

_DURATION = re.compile(r"^(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?$")


class WindowError(ValueError):
    """A window the API server accepted but that cannot be evaluated (e.g. an unknown time zone)."""


def parse_duration(text: str) -> timedelta:
    """``4h``, ``90m`` or ``1h30m`` as a timedelta."""
    match = _DURATION.match(text)
    if not match or not text:
        raise WindowError(f"duration {text!r} is not hours and minutes such as 4h or 1h30m")
    return timedelta(hours=int(match["h"] or 0), minutes=int(match["m"] or 0))


def window_open(window: MaintenanceWindow, now: datetime) -> bool:
    """Whether ``now`` (timezone-aware) falls inside the most recent occurrence of ``window``."""
    try:
        zone = ZoneInfo(window.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise WindowError(f"timeZone {window.time_zone!r} is not a known IANA time zone") from exc
    local_now = now.astimezone(zone)
    try:
        # Step back one second so a window starting exactly now counts as open.
        itr = croniter(window.schedule, local_now + timedelta(seconds=1))
        start: datetime = itr.get_prev(datetime)
    except (ValueError, KeyError) as exc:
        raise WindowError(f"schedule {window.schedule!r} is not a valid cron expression: {exc}") from exc
    return local_now < start + parse_duration(window.duration)


def any_window_open(windows: list[MaintenanceWindow], now: datetime) -> bool:
    """No windows means always open."""
    return not windows or any(window_open(w, now) for w in windows)
