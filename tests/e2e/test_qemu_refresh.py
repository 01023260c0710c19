"""A simulated node with real QEMU test-guest VMs refreshes through the real operator and agent processes.

The L0 is simulated; the VMs are not: each is a QEMU process running the project's test guest, handed
over by local live migration (zero-copy with shared file-backed RAM, copy otherwise), and proven intact
afterwards by the guest verifier (every page of the pattern checked, the guest still advancing).
Run with HOSTREFRESH_FORCE_TCG=1 to exercise TCG instead of KVM.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.nodeagent.guest.lab import GuestLab
from hostrefresh.nodeagent.migrate import VmLocation
from hostrefresh.nodeagent.migrate.accel import FORCE_TCG_ENV

from .harness import Cluster, Process, operator_process, running, wait_for
from .qemu_nodes import QemuNode, Running

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.qemu, pytest.mark.slow]

VMS = ["vm1", "vm2", "vm3"]
TERMINAL = {"Succeeded", "RolledBack", "Failed"}
ZERO_COPY_MAX_BYTES = 1 << 20  # device state only: far below one guest's 64 MiB of RAM
COPY_MIN_BYTES = 32 << 20  # RAM went through the migration stream


@pytest.fixture
def lab() -> Iterator[GuestLab]:
    """Short runtime paths for the QEMU sockets; no QEMU survives the test."""
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 not installed")
    lab = GuestLab()
    yield lab
    strays = asyncio.run(lab.close())
    assert not strays, f"QEMU processes left behind by the test: {strays}"


def _arm(node: QemuNode, rule: FaultRule) -> None:
    with open_l0("sim", node.base / "l0.state") as l0:
        l0.sim_inject_fault(rule)


def _vm_results(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {vm["name"]: vm for vm in status["agent"]["vms"]}


def _diag(status: dict[str, Any], *procs: Process) -> str:
    return f"status={status}\n" + "\n".join(f"--- {p.log_path.name}\n{p.tail(30)}" for p in procs)


def _assert_moved(before: dict[str, Running], after: dict[str, Running], role: str) -> None:
    """Every VM now runs in a different QEMU (started for ``role``), and its old QEMU is gone."""
    assert set(after) == set(before), (before, after)
    for vm, old in before.items():
        new = after[vm]
        assert new.pid != old.pid, f"{vm} still runs in its original QEMU {old.pid}"
        assert f"/{vm}.{role}." in new.qmp_socket, f"{vm}: {new.qmp_socket} was not started as the {role}"
        assert not QemuNode.alive(old.pid, old.qmp_socket), f"{vm}: old QEMU {old.pid} still runs"


def _assert_one_qemu_per_vm(node: QemuNode) -> None:
    """No QEMU of this node other than the one running each VM (no leftover source or target)."""
    owners = sorted(r.pid for r in node.running().values())
    assert node.qemu_pids() == owners, f"QEMUs of {node.name}: {node.qemu_pids()}, VM owners: {owners}"


def _assert_refreshed(node: QemuNode, before: dict[str, Running]) -> None:
    """The new host runs alone with nested off, and every VM runs in the QEMU the handover started."""
    state = node.l0_state()
    assert not state.nested and len(state.running_l1s) == 1, state.summary()
    assert state.running_l1s[0].id != 1, f"the old host still runs: {state.summary()}"
    after = node.running()
    _assert_moved(before, after, "target")
    # After Verifying the migrator committed: the new host's instances are the next refresh's source.
    assert node.locate() == dict.fromkeys(VMS, VmLocation.SOURCE)
    for record in node.migrator.inventory.records():
        assert record.owner == "source" and set(record.instances) == {"source"}, record
    _assert_one_qemu_per_vm(node)
    node.verify_all()


def _refresh(cluster: Cluster, tmp_path: Path, lab: GuestLab, node_name: str, *, shared: bool) -> None:
    node = QemuNode(lab, node_name)
    node.launch(VMS, shared=shared)
    before = node.running()
    cluster.add_node(node_name)
    op = operator_process(cluster.cp, tmp_path, f"op-{node_name}")
    agent = node.agent(cluster.cp, tmp_path, f"agent-{node_name}")
    with running(op, agent):
        cluster.host_refresh(f"{node_name}-hr", node_name)
        obj = cluster.wait_phase(f"{node_name}-hr", TERMINAL, timeout=180)
    status = obj["status"]
    assert status["phase"] == "Succeeded", _diag(status, agent, op)
    vms = _vm_results(status)
    assert set(vms) == set(VMS), vms
    for vm in vms.values():
        assert vm["result"] == "HandedOver", vm
        assert vm["path"] == ("ZeroCopy" if shared else "Copy"), vm
        assert vm["downtimeMillis"] is not None and vm["totalMillis"] is not None, vm
        if shared:
            assert vm["bytesTransferred"] < ZERO_COPY_MAX_BYTES, f"RAM was copied: {vm}"
        else:
            assert vm["bytesTransferred"] > COPY_MIN_BYTES, f"RAM did not go through the stream: {vm}"
    _assert_refreshed(node, before)


def test_three_vms_refresh_zero_copy(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    _refresh(cluster, tmp_path, lab, "qemu-zc", shared=True)


@pytest.mark.parametrize("accel", ["auto", "tcg"])
def test_three_vms_refresh_copy_fallback(
    cluster: Cluster, tmp_path: Path, lab: GuestLab, accel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also always under TCG: QEMU before 9.0 loses a TCG guest's writes in a live copy migration,
    which the migrator avoids by pausing the guest for the copy; the verifier proves it."""
    if accel == "tcg":
        monkeypatch.setenv(FORCE_TCG_ENV, "1")  # the VM specs (and so the agent's target QEMUs) use TCG
    _refresh(cluster, tmp_path, lab, f"qemu-copy-{accel}", shared=False)


def test_refused_retire_hands_real_vms_back(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    node = QemuNode(lab, "qemu-rb")
    node.launch(VMS, shared=True)
    before = node.running()
    _arm(node, FaultRule(call=Call.L1_RETIRE, status=Status.E_HW, times=1))
    cluster.add_node(node.name)
    op = operator_process(cluster.cp, tmp_path, "op-qemu-rb")
    agent = node.agent(cluster.cp, tmp_path, "agent-qemu-rb")
    with running(op, agent):
        cluster.host_refresh("qemu-rb-hr", node.name)
        obj = cluster.wait_phase("qemu-rb-hr", TERMINAL, timeout=180)
    status = obj["status"]
    assert status["phase"] == "RolledBack", _diag(status, agent, op)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "True", degraded
    vms = _vm_results(status)
    assert set(vms) == set(VMS), vms
    assert {vm["result"] for vm in vms.values()} == {"HandedBack"}, vms
    # The VMs went to the new host and came back: each runs in a fresh source QEMU, intact.
    node.assert_as_it_was()
    _assert_moved(before, node.running(), "source")
    _assert_one_qemu_per_vm(node)
    node.verify_all()


def test_agent_sigkilled_while_migrating_real_vms(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    node = QemuNode(lab, "qemu-kill")
    node.launch(VMS, shared=True)
    before = node.running()
    # A slow memory grant keeps the first agent inside Migrating long enough to be killed there.
    _arm(node, FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=1.5, times=1))
    cluster.add_node(node.name)
    name = "qemu-kill-hr"
    op = operator_process(cluster.cp, tmp_path, "op-qemu-kill")
    first = node.agent(cluster.cp, tmp_path, "agent-first")
    second = node.agent(cluster.cp, tmp_path, "agent-second")
    with running(op):
        first.start()
        try:
            cluster.host_refresh(name, node.name)

            def migrating() -> bool:
                agent = ((cluster.get("hostrefresh", name) or {}).get("status") or {}).get("agent") or {}
                return agent.get("step") == "Migrating" and agent.get("stepState") == "Running"

            wait_for(migrating, timeout=120, interval=0.05, what="agent in Migrating")
        finally:
            first.kill()  # SIGKILL to the agent's process group: no cleanup runs
        # The VMs' QEMUs (the running sources and the targets the first agent prepared) run in their
        # own sessions: the agent's death must not take any of them along.
        prepared = node.instances("target")
        assert set(prepared) == set(VMS), prepared
        for inst in [*before.values(), *prepared.values()]:
            assert QemuNode.alive(inst.pid, inst.qmp_socket), f"QEMU {inst.pid} died with the agent"
        second.start()
        try:
            obj = cluster.wait_phase(name, TERMINAL, timeout=180)
        finally:
            second.stop()
    status = obj["status"]
    assert status["phase"] == "Succeeded", _diag(status, first, second, op)
    assert "agent-second" in status["agent"]["agentId"]
    vms = _vm_results(status)
    assert {(vm["result"], vm["path"]) for vm in vms.values()} == {("HandedOver", "ZeroCopy")}, vms
    _assert_refreshed(node, before)
    # The second agent adopted the targets the first one prepared instead of starting new ones.
    assert {vm: r.pid for vm, r in node.running().items()} == {vm: r.pid for vm, r in prepared.items()}
