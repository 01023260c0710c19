"""The seam through which plans read their Prometheus health gate (``spec.healthGates.prometheus``).

Planning is pure (``waves.plan`` takes a ``GateReading``); this module does the reading. A gate that
cannot be read is closed: a plan never starts a node because Prometheus was down. Readings are kept
for ``ttl`` seconds per gate, so a plan that passes every second asks Prometheus far less often.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import aiohttp

from hostrefresh.api import PrometheusGate
from hostrefresh.operator.waves import GateReading

#: Seconds a reading is reused; about a Prometheus rule evaluation interval, far below a wave's length.
DEFAULT_TTL = 5.0
#: Seconds one query may take before the gate counts as unreadable (closed).
QUERY_TIMEOUT = 5.0


class GateReader(Protocol):
    """Reads a plan's Prometheus gate."""

    async def read(self, gate: PrometheusGate) -> GateReading: ...


class NoPrometheus:
    """The reader of an operator started without --prometheus-url: every gate is closed, and says why."""

    async def read(self, gate: PrometheusGate) -> GateReading:
        return GateReading(
            False,
            "the operator has no Prometheus to ask: start it with --prometheus-url (chart value "
            "operator.prometheusURL), or remove spec.healthGates.prometheus",
        )


class PrometheusReader:
    """Asks a Prometheus server's instant-query API (``/api/v1/query``) whether each query is empty."""

    def __init__(self, url: str, ttl: float = DEFAULT_TTL, timeout: float = QUERY_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.ttl = ttl
        self.timeout = timeout
        self._kept: dict[tuple[str, ...], tuple[float, GateReading]] = {}

    async def read(self, gate: PrometheusGate) -> GateReading:
        key = tuple(gate.queries())
        kept = self._kept.get(key)
        if kept is not None and time.monotonic() - kept[0] < self.ttl:
            return kept[1]
        reading = await self._ask(gate)
        self._kept[key] = (time.monotonic(), reading)
        return reading

    async def _ask(self, gate: PrometheusGate) -> GateReading:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                if gate.query is not None:
                    found = await self._series(session, gate.query)
                    if isinstance(found, str):
                        return GateReading(False, found)
                    if found:
                        return GateReading(False, f"query {gate.query!r} returned {describe(found)}")
                for alert in gate.alerts:
                    found = await self._series(session, f'ALERTS{{alertname="{alert}",alertstate="firing"}}')
                    if isinstance(found, str):
                        return GateReading(False, found)
                    if found:
                        return GateReading(False, f"alert {alert} is firing ({describe(found)})")
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return GateReading(False, f"Prometheus at {self.url} did not answer: {type(exc).__name__}: {exc}")
        return GateReading(True, "")

    async def _series(self, session: aiohttp.ClientSession, query: str) -> list[dict[str, Any]] | str:
        """The query's series, or what is wrong (a refused query, a result that is no instant vector)."""
        async with session.get(f"{self.url}/api/v1/query", params={"query": query}) as response:
            body = await response.json(content_type=None)
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            return f"Prometheus refused query {query!r}: {error}; fix the query in spec.healthGates.prometheus"
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            return (
                f"query {query!r} returns a {data.get('resultType')}, not an instant vector; write a query "
                "whose result is a set of series (empty when all is well)"
            )
        result = data.get("result") or []
        return [r for r in result if isinstance(r, dict)]


def describe(series: list[dict[str, Any]]) -> str:
    """A short account of what a query returned: how many series, and the first one's labels."""
    first = series[0].get("metric") or {}
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(first.items()))
    return f"{len(series)} series, e.g. {{{labels}}}"
