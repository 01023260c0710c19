"""Prometheus metrics of the operator (served by ``main`` on --metrics-port).

Names follow Prometheus conventions: ``hostrefresh_`` prefix, base units (seconds), ``_total`` for
counters, ``_info``-style ``_build_info`` gauge of 1, and live values computed at scrape time where a
stored number would go stale (seconds nested so far).
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import hostrefresh

REFRESHES = Counter("hostrefresh_refreshes_total", "Node refreshes that ended, by result", ["result"])
PHASE_SECONDS = Histogram(
    "hostrefresh_phase_duration_seconds",
    "Time spent in each refresh phase",
    ["phase"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
NESTED_SECONDS = Gauge("hostrefresh_nested_seconds", "Seconds spent nested in the node's last refresh", ["node"])
ACTIVE = Gauge("hostrefresh_active_refreshes", "Node refreshes in progress")
RECONCILE_SECONDS = Histogram(
    "hostrefresh_reconcile_duration_seconds",
    "Reconcile latency",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
API_REQUESTS = Counter("hostrefresh_operator_api_requests_total", "API requests the operator's own logic made", ["op"])
WRITES_IN_FLIGHT = Gauge("hostrefresh_operator_api_writes_in_flight", "The operator's API writes awaiting an answer")
BUILD_INFO = Gauge("hostrefresh_build_info", "Always 1; the labels say which build runs", ["version", "python_version"])
BUILD_INFO.labels(hostrefresh.__version__, platform.python_version()).set(1)
LEADER = Gauge("hostrefresh_operator_leader", "1 while this replica holds the leader Lease and acts, else 0")
PLAN_NODES = Gauge("hostrefresh_plan_nodes", "Nodes of a RefreshPlan by state", ["plan", "state"])
PLAN_WAVES = Gauge("hostrefresh_plan_waves_started", "Waves a RefreshPlan has started", ["plan"])
PLAN_HALTED = Gauge("hostrefresh_plan_halted", "1 while a RefreshPlan is paused by its failure threshold", ["plan"])
PLAN_PAUSED = Gauge("hostrefresh_plan_paused", "1 while a RefreshPlan is paused (by spec or by failures)", ["plan"])
PLAN_STATES = ("pending", "active", "succeeded", "failed")


class NestedNodes(Collector):
    """Nodes nested now, computed at scrape time from when each one's nesting began."""

    def __init__(self) -> None:
        self.since: dict[str, datetime] = {}

    def set(self, node: str, since: datetime | None) -> None:
        if since is None:
            self.since.pop(node, None)
        else:
            self.since[node] = since

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        nested = GaugeMetricFamily("hostrefresh_nodes_nested", "Nodes running nested now (mid-refresh)")
        nested.add_metric([], len(self.since))
        yield nested
        seconds = GaugeMetricFamily(
            "hostrefresh_node_nested_seconds", "Seconds the node has been nested so far, while it is", labels=["node"]
        )
        started = GaugeMetricFamily(
            "hostrefresh_node_nested_since_timestamp_seconds",
            "Unix time the node's nesting began, while it is nested",
            labels=["node"],
        )
        for node, since in sorted(self.since.items()):
            seconds.add_metric([node], max(now - since.timestamp(), 0.0))
            started.add_metric([node], since.timestamp())
        yield seconds
        yield started


NESTED_NOW = NestedNodes()
REGISTRY.register(NESTED_NOW)


def set_plan(plan: str, counts: dict[str, int], waves: int, paused: bool, halted: bool) -> None:
    """A RefreshPlan's progress gauges."""
    for state in PLAN_STATES:
        PLAN_NODES.labels(plan, state).set(counts.get(state, 0))
    PLAN_WAVES.labels(plan).set(waves)
    PLAN_PAUSED.labels(plan).set(1 if paused else 0)
    PLAN_HALTED.labels(plan).set(1 if halted else 0)


def forget_plan(plan: str) -> None:
    """Drop a deleted plan's series (no stale gauges for plans that are gone)."""
    for state in PLAN_STATES:
        with contextlib.suppress(KeyError):
            PLAN_NODES.remove(plan, state)
    for gauge in (PLAN_WAVES, PLAN_PAUSED, PLAN_HALTED):
        with contextlib.suppress(KeyError):
            gauge.remove(plan)
