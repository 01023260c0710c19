"""The operator's reading of a plan's Prometheus gate, against a real Prometheus server: an alert that
fires closes it, a query that returns series closes it, and a gate that cannot be read is closed
with the reason (a refused query, a result that is no vector, a server that does not answer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostrefresh.api import PrometheusGate
from hostrefresh.operator.gates import NoPrometheus, PrometheusReader
from hostrefresh.operator.waves import GateReading
from tests.e2e.prometheus import ALERT, METRIC, Prometheus, prometheus

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with prometheus(tmp_path_factory.mktemp("prometheus")) as prom:
        yield prom


def read(url: str, gate: PrometheusGate, ttl: float = 0.0) -> GateReading:
    return asyncio.run(PrometheusReader(url, ttl=ttl).read(gate))


def wait_reading(url: str, gate: PrometheusGate, quiet: bool, timeout: float = 60) -> GateReading:
    deadline = time.monotonic() + timeout
    while True:
        reading = read(url, gate)
        if reading.quiet is quiet or time.monotonic() > deadline:
            return reading
        time.sleep(0.5)


def test_an_alert_that_fires_closes_the_gate_until_it_resolves(server: Prometheus) -> None:
    gate = PrometheusGate(alerts=[ALERT])
    server.trouble.set(0)
    assert wait_reading(server.url, gate, quiet=True).quiet
    server.trouble.set(1)
    closed = wait_reading(server.url, gate, quiet=False)
    assert not closed.quiet and closed.message.startswith(f"alert {ALERT} is firing"), closed
    assert server.alert_firing()  # Prometheus' own view agrees
    server.trouble.set(0)
    assert wait_reading(server.url, gate, quiet=True).quiet


def test_a_query_that_returns_series_closes_the_gate(server: Prometheus) -> None:
    gate = PrometheusGate(query=f"{METRIC} > 0")
    server.trouble.set(2)
    closed = wait_reading(server.url, gate, quiet=False)
    assert not closed.quiet and f"query '{METRIC} > 0' returned 1 series" in closed.message, closed
    assert 'job="fleet"' in closed.message
    server.trouble.set(0)
    assert wait_reading(server.url, gate, quiet=True).quiet


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("sum(", "Prometheus refused query 'sum('"),
        ("1 + 1", "returns a scalar, not an instant vector"),
    ],
)
def test_a_query_that_cannot_be_judged_keeps_the_gate_closed(server: Prometheus, query: str, says: str) -> None:
    reading = read(server.url, PrometheusGate(query=query))
    assert not reading.quiet and says in reading.message, reading


def test_a_prometheus_that_does_not_answer_keeps_the_gate_closed(tmp_path: Path) -> None:
    reading = read("http://127.0.0.1:9", PrometheusGate(alerts=[ALERT]))
    assert not reading.quiet and "Prometheus at http://127.0.0.1:9 did not answer" in reading.message


def test_without_a_prometheus_url_the_gate_names_the_flag() -> None:
    reading = asyncio.run(NoPrometheus().read(PrometheusGate(alerts=[ALERT])))
    assert not reading.quiet and "--prometheus-url" in reading.message and "operator.prometheusURL" in reading.message


def test_a_reading_is_reused_for_its_ttl(server: Prometheus) -> None:
    async def twice() -> tuple[GateReading, GateReading]:
        reader = PrometheusReader(server.url, ttl=3600)
        first = await reader.read(PrometheusGate(query="vector(1)"))
        reader.url = "http://127.0.0.1:9"  # a second ask would fail: the kept reading answers
        return first, await reader.read(PrometheusGate(query="vector(1)"))

    first, second = asyncio.run(twice())
    assert first == second and not first.quiet and "returned 1 series" in first.message
