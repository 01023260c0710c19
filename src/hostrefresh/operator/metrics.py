"""Prometheus metrics of the operator (served by ``main`` on --metrics-port).

Names follow Prometheus conventions: every series the operator exports starts with
``hostrefresh_operator_`` (the agent's with ``hostrefresh_agent_``), base units (seconds), ``_total``
for counters, ``_info`` gauges of 1 whose labels carry the facts, ``node`` on every series about one
node and ``scope`` (Host or VMM) on every series about refreshes; live values are computed at scrape
time where a stored number would go stale (seconds nested so far). docs/metrics.md lists every one
(a test keeps it so).
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
from hostrefresh.api import RefreshScope

REFRESHES = Counter(
    "hostrefresh_operator_refreshes_total", "Node refreshes that ended, by result and scope", ["result", "scope"]
)
PHASE_SECONDS = Histogram(
    "hostrefresh_operator_phase_duration_seconds",
    "Time spent in each refresh phase, by phase and scope",
    ["phase", "scope"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
ACTIVE = Gauge("hostrefresh_operator_active_refreshes", "Node refreshes in progress, by scope", ["scope"])
RECONCILE_SECONDS = Histogram(
    "hostrefresh_operator_reconcile_duration_seconds",
    "Reconcile latency",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
API_REQUESTS = Counter("hostrefresh_operator_api_requests_total", "API requests the operator's own logic made", ["op"])
WRITES_IN_FLIGHT = Gauge("hostrefresh_operator_api_writes_in_flight", "The operator's API writes awaiting an answer")
BUILD_INFO = Gauge(
    "hostrefresh_operator_build_info", "Always 1; the labels say which build runs", ["version", "python_version"]
)
BUILD_INFO.labels(hostrefresh.__version__, platform.python_version()).set(1)
LEADER = Gauge("hostrefresh_operator_leader", "1 while this replica holds the leader Lease and acts, else 0")
PLAN_NODES = Gauge("hostrefresh_operator_plan_nodes", "Nodes of a RefreshPlan by state", ["plan", "state"])
PLAN_WAVES = Gauge("hostrefresh_operator_plan_waves_started", "Waves a RefreshPlan has started", ["plan"])
PLAN_HALTED = Gauge(
    "hostrefresh_operator_plan_halted", "1 while a RefreshPlan is paused by its failure threshold", ["plan"]
)
PLAN_PAUSED = Gauge(
    "hostrefresh_operator_plan_paused", "1 while a RefreshPlan is paused (by spec or by failures)", ["plan"]
)
PLAN_AWAITING = Gauge(
    "hostrefresh_operator_plan_awaiting_approval",
    "The wave a RefreshPlan waits to have approved (kubectl hostrefresh approve), else 0",
    ["plan"],
)
PLAN_STATES = ("pending", "active", "succeeded", "failed")
SCOPES = tuple(str(s) for s in RefreshScope)
for _scope in SCOPES:
    ACTIVE.labels(_scope).set(0)


class NestedNodes(Collector):
    """The one nested-seconds family, computed at scrape time: while a node is nested, the seconds
    since its nesting began (and that time, and how many nodes are nested); once it is not, the seconds
    its last refresh spent nested, as the agent reported them."""

    def __init__(self) -> None:
        self.since: dict[str, datetime] = {}
        self.last: dict[str, float] = {}

    def set(self, node: str, since: datetime | None) -> None:
        """Whether ``node`` is nested now, and since when."""
        if since is None:
            self.since.pop(node, None)
        else:
            self.since[node] = since

    def ended(self, node: str, nested_seconds: float) -> None:
        """``node``'s refresh ended having spent ``nested_seconds`` nested."""
        self.since.pop(node, None)
        self.last[node] = nested_seconds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        since, last = dict(self.since), dict(self.last)  # copies: the server thread scrapes, the loop writes
        nested = GaugeMetricFamily("hostrefresh_operator_nodes_nested", "Nodes running nested now (mid-refresh)")
        nested.add_metric([], len(since))
        yield nested
        seconds = GaugeMetricFamily(
            "hostrefresh_operator_node_nested_seconds",
            "Seconds the node has been nested so far while it is, else the seconds its last refresh spent nested",
            labels=["node"],
        )
        started = GaugeMetricFamily(
            "hostrefresh_operator_node_nested_since_timestamp_seconds",
            "Unix time the node's nesting began, while it is nested",
            labels=["node"],
        )
        for node in sorted(since.keys() | last.keys()):
            if node in since:
                seconds.add_metric([node], max(now - since[node].timestamp(), 0.0))
                started.add_metric([node], since[node].timestamp())
            else:
                seconds.add_metric([node], last[node])
        yield seconds
        yield started


class NodeVersions(Collector):
    """What each node runs, as its Node records it (``hostrefresh.io/host-version`` and
    ``hostrefresh.io/qemu-version``, written when a refresh succeeds): one series of value 1 per node
    with a record, like kube-state-metrics' ``kube_node_info``."""

    def __init__(self) -> None:
        self.versions: dict[str, tuple[str, str]] = {}

    def set(self, node: str, host_version: str, qemu_version: str) -> None:
        if host_version or qemu_version:
            self.versions[node] = (host_version, qemu_version)
        else:
            self.versions.pop(node, None)

    def forget(self, node: str) -> None:
        self.versions.pop(node, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "hostrefresh_operator_node_version_info",
            "Always 1 for a node a refresh succeeded on; the labels say the host and QEMU versions it runs",
            labels=["node", "host_version", "qemu_version"],
        )
        for node, (host, qemu) in sorted(dict(self.versions).items()):
            info.add_metric([node, host, qemu], 1)
        yield info


NESTED_NOW = NestedNodes()
REGISTRY.register(NESTED_NOW)
NODE_VERSIONS = NodeVersions()
REGISTRY.register(NODE_VERSIONS)


def set_plan(
    plan: str, counts: dict[str, int], waves: int, paused: bool, halted: bool, awaiting: int | None = None
) -> None:
    """A RefreshPlan's progress gauges."""
    PLAN_AWAITING.labels(plan).set(awaiting or 0)
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
    for gauge in (PLAN_WAVES, PLAN_PAUSED, PLAN_HALTED, PLAN_AWAITING):
        with contextlib.suppress(KeyError):
            gauge.remove(plan)
