"""Prometheus metrics of the node agent (one registry per process, labelled by node)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STEPS = Counter("hostrefresh_agent_steps_total", "Steps run, by step and result", ["node", "step", "result"])
STEP_SECONDS = Histogram(
    "hostrefresh_agent_step_duration_seconds",
    "Duration of each step",
    ["step"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
HANDOVERS = Counter("hostrefresh_agent_handovers_total", "VM handovers, by path and outcome", ["path", "outcome"])
DOWNTIME = Histogram(
    "hostrefresh_agent_handover_downtime_seconds",
    "Guest downtime during handover",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
NESTED_SECONDS = Gauge("hostrefresh_agent_nested_seconds", "Seconds nested in the node's last refresh", ["node"])
RETRIES = Counter(
    "hostrefresh_agent_retries_total",
    "Retries after a transient error (an L0 call, a sysfs write, a status write), by node",
    ["node"],
)
VMS_LOST = Gauge(
    "hostrefresh_agent_vms_lost",
    "VMs of the node that run nowhere (their last host died with them); kept for a person to look at",
    ["node"],
)
API_RETRIES = Counter(
    "hostrefresh_agent_api_retries_total",
    "API requests made again because the API server did not answer (restarting, overloaded), by request",
    ["request"],
)
