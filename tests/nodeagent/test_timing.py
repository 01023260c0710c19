"""Timing records survive the trip through the agent's log."""

from __future__ import annotations

import logging

import pytest

from hostrefresh.nodeagent import timing


def test_records_are_parsed_back_from_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hostrefresh.timing"):
        timing.record("l0", 1.0, 2.5, call="nested_enable")
    line = f"2026-11-30 03:45:16,857 INFO hostrefresh.timing {caplog.records[0].getMessage()}"
    assert timing.parse(["unrelated line", line]) == [{"kind": "l0", "start": 1.0, "end": 2.5, "call": "nested_enable"}]


def test_nothing_is_recorded_when_the_logger_is_off(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("hostrefresh.timing")
    logger.setLevel(logging.WARNING)
    try:
        with caplog.at_level(logging.WARNING, logger="hostrefresh.timing"):
            timing.record("l0", 1.0, 2.0, call="query")
        assert caplog.records == []
    finally:
        logger.setLevel(logging.NOTSET)
