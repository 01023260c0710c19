"""Timing records of what an agent spends its time on: L0 calls, the new host's boot, each VM's switch.

One JSON line per record on the ``hostrefresh.timing`` logger (wall clock, so the records of the two
hosts' agents line up); ``bench/twohost.py`` splits a refresh's nested window with them. Records are
cheap (one log line each) and few (a handful per step).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("hostrefresh.timing")
PREFIX = "timing "


def record(kind: str, start: float, end: float, **fields: Any) -> None:
    """``kind`` took place from ``start`` to ``end`` (``time.time()`` values)."""
    if not log.isEnabledFor(logging.INFO):
        return
    log.info("%s%s", PREFIX, json.dumps({"kind": kind, "start": start, "end": end, **fields}, sort_keys=True))


@contextmanager
def timed(kind: str, **fields: Any) -> Iterator[None]:
    start = time.time()
    try:
        yield
    finally:
        record(kind, start, time.time(), **fields)


def parse(lines: Iterator[str] | list[str]) -> list[dict[str, Any]]:
    """The records in log lines (other lines ignored)."""
    out = []
    marker = PREFIX + "{"  # (the logger's own name, hostrefresh.timing, precedes it on the line)
    for line in lines:
        at = line.find(marker)
        if at >= 0:
            try:
                out.append(json.loads(line[at + len(PREFIX) :]))
            except json.JSONDecodeError:
                continue
    return out
