"""Two real hosts per node: the VMs survive the real death of the old host, and only them.

Each node is a machine of the machine simulator: every running L1 of its simulated L0 is a real
isolated host (PID, mount and UTS namespaces, an init, an agent of its own). The old host's agent
sends each VM; the new host's agent starts the destination QEMUs in its own host and receives them;
the retire kills every process of the old host at once. Guests are real QEMU test guests whose whole
memory pattern is verified in the host they end up in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.l0 import Call, FaultRule, Status
from hostrefresh.nodeagent.migrate.accel import FORCE_TCG_ENV
from hostrefresh.nodeagent.partitioner import Partitioner
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.sysfs import FakeSysfsIO

from .harness import STEP_CALLS, Cluster, Process, operator_process, wait_for
from .twohost_nodes import TwoHostNode

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.qemu, pytest.mark.slow]

VMS = ["vm1", "vm2", "vm3"]
TERMINAL = {"Succeeded", "RolledBack", "Failed"}
SLOW_CALL_S = 2.5


@contextmanager
def machine_running(cluster: Cluster, tmp_path: Path, lab: GuestLab, name: str) -> Iterator[TwoHostNode]:
    """A machine with its first host up, its node registered, and an operator running."""
    node = TwoHostNode(lab, name)
    cluster.add_node(name)
    machine = node.machine(cluster.cp, tmp_path)
    op = operator_process(cluster.cp, tmp_path, f"op-{name}")
    node.operator = op
    machine.start()
    op.start()
    try:
        node.wait_up()
        yield node
    finally:
        op.stop()
        machine.stop()


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    return ((cluster.get("hostrefresh", name) or {}).get("status")) or {}


def _wait_step(cluster: Cluster, name: str, step: str) -> None:
    def there() -> bool:
        agent = _status(cluster, name).get("agent") or {}
        return agent.get("step") == step and agent.get("stepState") == "Running"

    wait_for(there, timeout=120, interval=0.05, what=f"{name}: agent running {step}")


def _terminal(cluster: Cluster, node: TwoHostNode, name: str) -> dict[str, Any]:
    """Wait for the refresh to end; on a timeout, say where it stood and what the hosts logged."""
    try:
        return cluster.wait_phase(name, TERMINAL, timeout=180)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diag(_status(cluster, name), node)}") from None


def _diag(status: dict[str, Any], node: TwoHostNode, *procs: Process) -> str:
    return f"status={status}\n{node.logs()}\n" + "\n".join(f"--- {p.log_path.name}\n{p.tail(20)}" for p in procs)


def _assert_in_one_host(node: TwoHostNode, l1: int, vms: list[str]) -> None:
    """Only host ``l1`` runs, exactly one QEMU per guest runs there, and every guest is intact."""
    assert node.running_l1s() == [l1], node.l0_state().summary()
    ns = node.pidns(l1)
    qemus = node.qemus()
    assert len(qemus) == len(vms), f"QEMUs of {node.name}: {[(q.pid, q.pidns) for q in qemus]}"
    assert {q.pidns for q in qemus} == {ns}, f"a QEMU outside host L1 {l1}: {qemus}"
    assert sorted(node.records(l1)) == sorted(vms)
    node.verify_all(vms)
    offline = Partitioner(FakeSysfsIO(node.layout.sysfs(l1))).offline_now()
    assert offline.cpus == [] and offline.memory_blocks == [], f"host L1 {l1} has resources offline: {offline}"


def _assert_refreshed(
    cluster: Cluster, node: TwoHostNode, name: str, old_ns: str | None, vms: list[str], *, zero_copy: bool = True
) -> None:
    status = _status(cluster, name)
    assert status.get("phase") == "Succeeded", _diag(status, node)
    assert old_ns is not None and node.members(old_ns) == [], "a process of the old host survived the retire"
    assert not node.layout.host(1).exists(), "the old host's own state survived it"
    _assert_in_one_host(node, 2, vms)
    assert "/l1-2" in status["agent"]["agentId"], status["agent"]
    results = {vm["name"]: vm for vm in status["agent"]["vms"]}
    assert set(results) == set(vms), results
    for vm in results.values():
        assert (vm["result"], vm["path"]) == ("HandedOver", "ZeroCopy" if zero_copy else "Copy"), vm
        assert vm["downtimeMillis"] is not None and vm["totalMillis"] is not None, vm
        if zero_copy:
            assert vm["bytesTransferred"] < 1 << 20, f"RAM went through the stream: {vm}"
        else:
            assert vm["bytesTransferred"] > 32 << 20, f"RAM did not go through the stream: {vm}"
    # Every CPU of the machine is the new host's now, online.
    assert len(Partitioner(FakeSysfsIO(node.layout.sysfs(2))).observe().cpus) == 8


def test_three_vms_survive_the_death_of_their_old_host(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    with machine_running(cluster, tmp_path, lab, "two-hosts") as node:
        node.launch(VMS)
        old_ns = node.pidns(1)
        assert {q.pidns for q in node.qemus()} == {old_ns}
        cluster.host_refresh("two-hosts-hr", node.name)
        _terminal(cluster, node, "two-hosts-hr")
        _assert_refreshed(cluster, node, "two-hosts-hr", old_ns, VMS)


@pytest.mark.parametrize("accel", ["auto", "tcg"])
def test_copy_fallback_across_two_hosts(
    cluster: Cluster, tmp_path: Path, lab: GuestLab, accel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guests without shared RAM cross over by copy. Always also under TCG: QEMU before 9.0 loses a TCG
    guest's writes in a live copy migration, which the sender avoids by pausing the guest for the copy."""
    if accel == "tcg":
        monkeypatch.setenv(FORCE_TCG_ENV, "1")  # the specs, and so the new host's destinations, use TCG
    name = f"copy-{accel}"
    with machine_running(cluster, tmp_path, lab, name) as node:
        node.launch(VMS, shared=False)
        old_ns = node.pidns(1)
        cluster.host_refresh(f"{name}-hr", node.name)
        _terminal(cluster, node, f"{name}-hr")
        _assert_refreshed(cluster, node, f"{name}-hr", old_ns, VMS, zero_copy=False)


def test_refused_retire_recalls_every_vm_from_the_new_host(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    """The L0 refuses the retire after every VM runs in the new host: the rollback recalls each VM
    (the new host's agent sends it back), then the L0 stops the new host with everything in it."""
    with machine_running(cluster, tmp_path, lab, "recall") as node:
        node.launch(VMS)
        node.arm(FaultRule(call=Call.L1_RETIRE, status=Status.E_HW, times=1))
        cluster.host_refresh("recall-hr", node.name)
        status = _terminal(cluster, node, "recall-hr")["status"]
        assert status["phase"] == "RolledBack", _diag(status, node)
        results = {vm["name"]: vm["result"] for vm in status["agent"]["vms"]}
        assert results == dict.fromkeys(VMS, "HandedBack"), results
        assert node.channel_empty(), f"a finished rollback leaves transfers in the channel: {node.channel_files()}"
        _assert_in_one_host(node, 1, VMS)


# The old host's agent killed in the steps of the handover itself; every other step of both hosts'
# agents is covered by the fault campaign's two-host-agent-kills scenario (with its VM ledger).
OLD_HOST_STEPS = [(s, c) for s, c in STEP_CALLS if s in ("Migrating", "Retiring")]


@pytest.mark.parametrize(("step", "call"), OLD_HOST_STEPS, ids=[s for s, _ in OLD_HOST_STEPS])
def test_old_host_agent_killed_at_each_step(
    cluster: Cluster, tmp_path: Path, lab: GuestLab, step: str, call: Call
) -> None:
    """The old host's init starts a new agent, which carries on from what it observes."""
    name = f"kill-old-{step.lower()}"
    with machine_running(cluster, tmp_path, lab, name) as node:
        node.launch(VMS)
        old_ns = node.pidns(1)
        node.arm(FaultRule(call=call, status=Status.OK, latency_s=SLOW_CALL_S, times=1))
        cluster.host_refresh(f"{name}-hr", node.name)
        _wait_step(cluster, f"{name}-hr", step)
        killed = node.kill_agent(1)
        _terminal(cluster, node, f"{name}-hr")
        assert killed not in node.members(old_ns or ""), "the killed agent still runs"
        _assert_refreshed(cluster, node, f"{name}-hr", old_ns, VMS)


def test_new_host_killed_while_it_boots(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    with machine_running(cluster, tmp_path, lab, "kill-new-boot") as node:
        node.launch(VMS)
        cluster.host_refresh("kill-new-boot-hr", node.name)
        wait_for(lambda: node.pidns(2), timeout=120, interval=0.02, what="the new host up")
        node.kill_host(2)
        obj = _terminal(cluster, node, "kill-new-boot-hr")
        assert obj["status"]["phase"] == "RolledBack", _diag(obj["status"], node)
        _assert_in_one_host(node, 1, VMS)


def test_new_host_killed_while_migrating(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    """The destinations were prepared in the new host and die with it; the guests never left."""
    with machine_running(cluster, tmp_path, lab, "kill-new-mig") as node:
        node.launch(VMS)
        node.arm(FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=SLOW_CALL_S, times=1))
        cluster.host_refresh("kill-new-mig-hr", node.name)
        _wait_step(cluster, "kill-new-mig-hr", "Migrating")
        members = node.kill_host(2)
        assert len(members) >= 2 + len(VMS), f"the new host had its init, agent and destinations: {members}"
        obj = _terminal(cluster, node, "kill-new-mig-hr")
        assert obj["status"]["phase"] == "RolledBack", _diag(obj["status"], node)
        _assert_in_one_host(node, 1, VMS)


def test_vm_that_cannot_be_handed_over_stops_the_refresh_before_the_retire(
    cluster: Cluster, tmp_path: Path, lab: GuestLab
) -> None:
    """A VM started during the handover that cannot move (no shared RAM, copy not allowed) is named,
    the retire never comes, and every VM ends on the old host."""
    with machine_running(cluster, tmp_path, lab, "late-vm") as node:
        node.launch(VMS)
        node.arm(FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=6.0, times=1))
        cluster.host_refresh("late-vm-hr", node.name, handover={"copyFallback": False})
        _wait_step(cluster, "late-vm-hr", "Migrating")
        node.launch(["vm4"], shared=False, l1=1)  # (naming the host: the L0 is busy with the slow grant)
        obj = _terminal(cluster, node, "late-vm-hr")
        status = obj["status"]
        assert status["phase"] == "RolledBack", _diag(status, node)
        failed = [c for c in status["conditions"] if "vm4" in (c.get("message") or "")]
        assert failed, f"no condition names vm4: {status['conditions']}"
        assert node.l0_state().l1(1) is not None and node.running_l1s() == [1]
        _assert_in_one_host(node, 1, [*VMS, "vm4"])


def test_new_host_dying_with_the_vms_is_never_a_clean_outcome(cluster: Cluster, tmp_path: Path, lab: GuestLab) -> None:
    """Once the guests run in the new host, its death takes them along: the refresh names every lost
    VM, never ends RolledBack or Succeeded, and no stale old instance is resumed behind its back."""
    name = "lost-vms-hr"
    with machine_running(cluster, tmp_path, lab, "lost-vms") as node:
        node.launch(VMS)
        node.arm(FaultRule(call=Call.MEM_GRANT, status=Status.OK, latency_s=SLOW_CALL_S, times=1))
        cluster.host_refresh(name, node.name)
        _wait_step(cluster, name, "Migrating")
        cluster.cp.kubectl("patch", "hostrefresh", name, "--type=merge", "-p", '{"spec":{"paused":true}}')

        def paused_after_migrating() -> bool:
            agent = _status(cluster, name).get("agent") or {}
            return agent.get("step") == "Migrating" and agent.get("message") == "paused between steps"

        wait_for(paused_after_migrating, timeout=60, interval=0.1, what="paused after Migrating")
        assert sorted(node.records(2)) == VMS, "the guests run in the new host"
        node.kill_host(2)
        cluster.cp.kubectl("patch", "hostrefresh", name, "--type=merge", "-p", '{"spec":{"paused":false}}')

        def named() -> dict[str, Any] | None:
            status = _status(cluster, name)
            agent = status.get("agent") or {}
            message = agent.get("message") or ""
            return status if agent.get("failureReason") and all(vm in message for vm in VMS) else None

        status = wait_for(named, timeout=120, interval=0.2, what="a failure naming every lost VM")
        assert status["agent"]["failureReason"] == "VMsLost", status["agent"]
        # The rest is undone all the same, and the refresh ends Failed, naming them: never clean.
        obj = _terminal(cluster, node, name)
        assert obj["status"]["phase"] == "Failed", _diag(obj["status"], node)
        degraded = next(c for c in obj["status"]["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "VMsLost" and all(vm in degraded["message"] for vm in VMS), degraded
        assert node.qemus() == [], "a stale instance of a lost guest runs again"
        assert node.running_l1s() == [1]
