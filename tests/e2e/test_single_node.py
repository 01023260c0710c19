"""One simulated node refreshes end to end with the real operator and agent processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostrefresh.l0 import open_l0

from .harness import Cluster, agent_process, operator_process, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


def test_one_node_refresh_end_to_end(cluster: Cluster, tmp_path: Path) -> None:
    cluster.add_node("e2e-a")
    op = operator_process(cluster.cp, tmp_path, "op-single")
    agent = agent_process(cluster.cp, tmp_path, ["e2e-a"], name="agent-single")
    with running(op, agent):
        cluster.host_refresh("e2e-a-refresh", "e2e-a")
        obj = cluster.wait_phase("e2e-a-refresh", {"Succeeded", "RolledBack", "Failed"}, timeout=90)
        status = obj["status"]
        assert status["phase"] == "Succeeded", (status, agent.tail(), op.tail())
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["Ready"]["status"] == "True"
        assert conds["NestedActive"]["status"] == "False"
        assert conds["PreflightPassed"]["status"] == "True"
        assert status["conditions"][0]["type"] == "Ready"
        assert status["agent"]["nestedSeconds"] > 0
        assert {vm["result"] for vm in status["agent"]["vms"]} == {"HandedOver"}
        # the operator records the phases it observed; a step that takes a millisecond may pass unseen
        assert {"Preflight", "Succeeded"} <= set(status["phaseTimestamps"])
        # the node's marks came and went
        node = cluster.get("node", "e2e-a")
        assert node is not None
        assert not any(t["key"] == "hostrefresh.io/refreshing" for t in node["spec"].get("taints") or [])
        assert "hostrefresh.io/refreshing" not in (node["metadata"].get("annotations") or {})
        # the simulated L0 shows the new host alone, nested off
        with open_l0("sim", tmp_path / "nodes" / "e2e-a" / "l0.state") as l0:
            state = l0.query()
        assert not state.nested and len(state.running_l1s) == 1 and len(state.partitions) == 1
        wait_for(
            lambda: {"PhasePreflight", "PhaseSucceeded"} <= cluster.event_reasons("e2e-a-refresh"),
            timeout=20,
            what="phase Events",
        )
