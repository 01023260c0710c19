"""Prometheus metrics of the operator (served by ``main`` on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
