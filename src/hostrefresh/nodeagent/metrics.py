"""Prometheus metrics of the node agent (one registry per process, which may host several simulated
nodes: every series about a node carries ``node``, every series about a refresh ``scope``).

Every name starts with ``hostrefresh_agent_`` (the operator's with ``hostrefresh_operator_``); the
seconds a node spends nested are the operator's (``hostrefresh_operator_node_nested_seconds``, from
what the agent reports in the HostRefresh status). docs/metrics.md lists every one (a test keeps it so).
"""

from __future__ import annotations

import platform

from prometheus_client import Counter, Gauge, Histogram

import hostrefresh

STEPS = Counter(
    "hostrefresh_agent_steps_total", "Steps run, by node, scope, step and result", ["node", "scope", "step", "result"]
)
STEP_SECONDS = Histogram(
    "hostrefresh_agent_step_duration_seconds",
    "Duration of each step that ended done, by node, scope and step",
    ["node", "scope", "step"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
HANDOVERS = Counter(
    "hostrefresh_agent_handovers_total",
    "VM handovers, by node, scope, path and outcome",
    ["node", "scope", "path", "outcome"],
)
DOWNTIME = Histogram(
    "hostrefresh_agent_handover_downtime_seconds",
    "Guest downtime during a handover that moved the VM, by node and scope",
    ["node", "scope"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
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
BUILD_INFO = Gauge(
    "hostrefresh_agent_build_info", "Always 1; the labels say which build runs", ["version", "python_version"]
)
BUILD_INFO.labels(hostrefresh.__version__, platform.python_version()).set(1)
