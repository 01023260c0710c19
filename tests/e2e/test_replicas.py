"""Two operator replicas at once: one leads, every step is done exactly once, the other takes over."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.sim.node import SimNodeSpec, create_sim_node

from .harness import Cluster, agent_process, operator_process, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]
TERMINAL = {"Succeeded", "RolledBack", "Failed"}


def _events(cluster: Cluster, prefix: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.cp.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"].get("name", "").startswith(prefix)]


def _leader(cluster: Cluster) -> str:
    lease = cluster.get("lease", "hostrefresh-operator", namespace="hostrefresh-system") or {}
    return str((lease.get("spec") or {}).get("holderIdentity"))


def test_two_replicas_act_once_and_fail_over(cluster: Cluster, tmp_path: Path) -> None:
    nodes = [f"ha-{i}" for i in range(4)]
    for node in nodes:
        create_sim_node(tmp_path / "nodes", node, SimNodeSpec(sim_vms=2))
        cluster.add_node(node)
    replica_a = operator_process(cluster.cp, tmp_path, "replica-a", "--lease-seconds=3")
    replica_b = operator_process(cluster.cp, tmp_path, "replica-b", "--lease-seconds=3")
    with running(replica_a, replica_b, agent_process(cluster.cp, tmp_path, nodes)):
        wait_for(lambda: _leader(cluster) in ("replica-a", "replica-b"), timeout=30, what="a leader")
        for node in nodes[:2]:
            cluster.host_refresh(f"ha-first-{node}", node)
        for node in nodes[:2]:
            assert cluster.wait_phase(f"ha-first-{node}", TERMINAL)["status"]["phase"] == "Succeeded"
        leader = _leader(cluster)
        # the leader dies; the standby takes over and carries on
        (replica_a if leader == "replica-a" else replica_b).kill()
        standby = "replica-b" if leader == "replica-a" else "replica-a"
        wait_for(lambda: _leader(cluster) == standby, timeout=30, what="failover")
        for node in nodes[2:]:
            cluster.host_refresh(f"ha-second-{node}", node)
        for node in nodes[2:]:
            assert cluster.wait_phase(f"ha-second-{node}", TERMINAL)["status"]["phase"] == "Succeeded"
        wait_for(
            lambda: sum(e["reason"] == "PhaseSucceeded" for e in _events(cluster, "ha-")) == 4,
            timeout=20,
            what="the final Events posted",
        )
    # every phase change was announced exactly once per refresh: nobody acted twice
    counts: Counter[tuple[str, str]] = Counter()
    for e in _events(cluster, "ha-"):  # a repeat is counted on one Event: its count, not its objects
        counts[(e["involvedObject"]["name"], e["reason"])] += int(e.get("count") or 1)
    phase_events = {k: v for k, v in counts.items() if k[1].startswith("Phase")}
    assert phase_events and all(n == 1 for n in phase_events.values()), phase_events
    for node in nodes:
        name = f"ha-first-{node}" if node in nodes[:2] else f"ha-second-{node}"
        reasons = {r for (n, r) in phase_events if n == name}
        assert {"PhasePreflight", "PhaseSucceeded"} <= reasons, (name, reasons)
