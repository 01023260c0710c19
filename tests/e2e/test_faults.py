"""Faults: an L0 call failing at each step, and the agent SIGKILLed in each step.

A failure before the point of no return rolls back and leaves the node exactly as it was; a
crash anywhere is resumed by a fresh agent process from observed state.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hostrefresh.l0 import Call, FaultRule, L0State, Status, open_l0
from hostrefresh.nodeagent.migrate import VmLocation
from hostrefresh.nodeagent.partitioner import Partitioner
from hostrefresh.sim.migrator import SimMigrator, SimVm
from hostrefresh.sim.node import SimNodeSpec, create_sim_node
from hostrefresh.sim.sysfs import FakeSysfsIO

from .harness import STEP_CALLS, Cluster, agent_process, operator_process, running, slow_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]
SPEC = SimNodeSpec(cpus=8, memory_blocks=32, sim_vms=3)


def _l0_state(root: Path, node: str) -> L0State:
    with open_l0("sim", root / node / "l0.state") as l0:
        return l0.query()


def assert_node_as_it_was(root: Path, node: str) -> None:
    """One host (the original L1 1), one partition, nested off, everything online, VMs on the old host."""
    state = _l0_state(root, node)
    assert not state.nested, state.summary()
    assert [x.id for x in state.running_l1s] == [1], state.summary()
    assert len(state.partitions) == 1, state.summary()
    offline = Partitioner(FakeSysfsIO(root / node / "sysfs")).offline_now()
    assert offline.cpus == [] and offline.memory_blocks == [], offline
    vms = [SimVm(f"{node}-vm{i}") for i in range(SPEC.sim_vms)]
    locations = asyncio.run(SimMigrator(vms, root / node / "vms.json").locate())
    assert set(locations.values()) == {VmLocation.SOURCE}, locations


FAILING_CALLS = [Call.PARTITION_CREATE, Call.NESTED_ENABLE, Call.L1_BOOT, Call.MEM_GRANT, Call.L1_RETIRE]


@pytest.mark.parametrize("call", FAILING_CALLS, ids=[c.name for c in FAILING_CALLS])
def test_l0_fault_rolls_back_to_the_node_as_it_was(cluster: Cluster, tmp_path: Path, call: Call) -> None:
    node = f"fault-{call.name.lower().replace('_', '-')}"
    root = tmp_path / "nodes"
    create_sim_node(root, node, SPEC)
    with open_l0("sim", root / node / "l0.state") as l0:
        l0.sim_inject_fault(FaultRule(call=call, status=Status.E_HW, times=1))
        # and the rollback itself meets a transient failure once: it must still converge
        l0.sim_inject_fault(FaultRule(call=Call.NESTED_DISABLE, status=Status.E_BUSY, times=1))
    cluster.add_node(node)
    op = operator_process(cluster.cp, tmp_path, f"op-{node}")
    agent = agent_process(cluster.cp, tmp_path, [node], name=f"agent-{node}")
    with running(op, agent):
        cluster.host_refresh(f"{node}-hr", node)
        obj = cluster.wait_phase(f"{node}-hr", {"Succeeded", "RolledBack", "Failed"}, timeout=90)
    status = obj["status"]
    assert status["phase"] == "RolledBack", (status, agent.tail())
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "StepFailed"
    assert "L0" in degraded["message"] or "retire" in degraded["message"]
    assert_node_as_it_was(root, node)
    node_obj = cluster.get("node", node)
    assert node_obj is not None
    assert not [t for t in node_obj["spec"].get("taints") or [] if t["key"].startswith("hostrefresh.io/")]


def test_fault_after_the_point_of_no_return_rolls_forward(cluster: Cluster, tmp_path: Path) -> None:
    node = "fault-forward"
    root = tmp_path / "nodes"
    create_sim_node(root, node, SPEC)
    with open_l0("sim", root / node / "l0.state") as l0:
        l0.sim_inject_fault(FaultRule(call=Call.NESTED_DISABLE, status=Status.E_HW, times=2))
    cluster.add_node(node)
    with running(operator_process(cluster.cp, tmp_path, "op-fwd"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh(f"{node}-hr", node)
        obj = cluster.wait_phase(f"{node}-hr", {"Succeeded", "RolledBack", "Failed"}, timeout=90)
    assert obj["status"]["phase"] == "Succeeded"
    state = _l0_state(root, node)
    assert not state.nested and len(state.running_l1s) == 1 and state.running_l1s[0].id != 1


# The step to interrupt, and an L0 call inside it made slow so the kill lands mid-step.
KILL_POINTS = STEP_CALLS


@pytest.mark.parametrize(("step", "call"), KILL_POINTS, ids=[k[0] for k in KILL_POINTS])
def test_agent_sigkilled_in_each_step_resumes(cluster: Cluster, tmp_path: Path, step: str, call: Call) -> None:
    node = f"kill-{step.lower()}"
    root = tmp_path / "nodes"
    create_sim_node(root, node, SPEC)
    with open_l0("sim", root / node / "l0.state") as l0:
        l0.sim_inject_fault(FaultRule(call=call, status=Status.OK, latency_s=1.5, times=1))
    cluster.add_node(node)
    name = f"{node}-hr"
    op = operator_process(cluster.cp, tmp_path, f"op-{node}")
    first = agent_process(cluster.cp, tmp_path, [node], name="agent-first")
    second = agent_process(cluster.cp, tmp_path, [node], name="agent-second")
    with running(op):
        first.start()
        cluster.host_refresh(name, node)

        def in_step() -> bool:
            obj = cluster.get("hostrefresh", name) or {}
            agent = (obj.get("status") or {}).get("agent") or {}
            return agent.get("step") == step and agent.get("stepState") == "Running"

        wait_for(in_step, timeout=60, interval=0.05, what=f"agent in {step}")
        first.kill()
        second.start()
        try:
            obj = cluster.wait_phase(name, {"Succeeded", "RolledBack", "Failed"}, timeout=90)
        finally:
            second.stop()
    assert obj["status"]["phase"] == "Succeeded", (obj["status"], second.tail())
    ids = {obj["status"]["agent"]["agentId"]}
    assert any("agent-second" in i for i in ids)
    state = _l0_state(root, node)
    assert not state.nested and len(state.running_l1s) == 1 and len(state.partitions) == 1
    vms = {vm["name"]: vm["result"] for vm in obj["status"]["agent"]["vms"]}
    assert set(vms.values()) == {"HandedOver"} and len(vms) == SPEC.sim_vms


# The image replaced with other bytes while the refresh runs: in the step the agent is held in (by a
# slow L0 call), and the outcome that must follow.
IMAGE_SWAPS = [
    ("NestedEnabling", Call.NESTED_ENABLE, "RolledBack"),  # nothing booted from it yet: roll back
    ("Migrating", Call.MEM_GRANT, "Succeeded"),  # its host runs already: the file is no longer needed
    ("Devirtualizing", Call.NESTED_DISABLE, "Succeeded"),  # past the point of no return too
]


@pytest.mark.parametrize(("step", "call", "outcome"), IMAGE_SWAPS, ids=[s for s, _, _ in IMAGE_SWAPS])
def test_target_image_replaced_mid_refresh(
    cluster: Cluster, tmp_path: Path, step: str, call: Call, outcome: str
) -> None:
    """Once the new host booted from the verified image, the image file changing (or going away) is no
    reason to lose sight of that host: it is found by the checksum it booted with. Before that, the
    refresh stops at the step it is in, saying ImageInvalid, and rolls back."""
    node = f"image-{step.lower()}"
    root = tmp_path / "nodes"
    slow_node(root, node, call, 2.5, SPEC)
    cluster.add_node(node)
    target = cluster.target_image("2.0")
    with running(operator_process(cluster.cp, tmp_path, f"op-{node}"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh(f"{node}-hr", node)

        def in_step() -> bool:
            agent = ((cluster.get("hostrefresh", f"{node}-hr") or {}).get("status") or {}).get("agent") or {}
            return bool(agent.get("step") == step)

        wait_for(in_step, timeout=60, interval=0.05, what=f"{node}-hr in {step}")
        Path(target["kernel"]).write_bytes(b"another kernel\n" * 64)
        obj = cluster.wait_phase(f"{node}-hr", {"Succeeded", "RolledBack", "Failed"}, timeout=90)
    status = obj["status"]
    assert status["phase"] == outcome, "\n".join(
        f"{c['type']}: {c['reason']}: {c['message']}" for c in status["conditions"]
    )
    state = _l0_state(root, node)
    assert not state.nested and len(state.running_l1s) == 1 and len(state.partitions) == 1, state.summary()
    if outcome == "RolledBack":
        degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
        # Met where the image is next needed: the boot that follows the step it changed in.
        assert "step BootingTarget failed (ImageInvalid)" in degraded["message"], degraded
        assert_node_as_it_was(root, node)
    else:
        assert state.running_l1s[0].id != 1, state.summary()
