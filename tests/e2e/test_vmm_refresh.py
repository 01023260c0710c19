"""VMM-only refreshes (scope VMM) through the operator and the agents: QEMU replaced, nothing nested.

A fleet of simulated nodes takes a RefreshPlan of VMM refreshes; machines of the machine simulator
run real QEMU test guests of an older Debian build, which each node's agent hands to the installed
build in the same host (and back, when the refresh fails before its last VM).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.l0 import open_l0
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.guest.qemubuilds import QemuBuild
from hostrefresh.sim.node import SimNodeSpec, create_sim_node

from .harness import Cluster, agent_process, operator_process, running, wait_for
from .test_two_hosts import _diag, _terminal, _wait_step, machine_running
from .twohost_nodes import TwoHostNode

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

VMS = ["vm1", "vm2", "vm3"]
VMM_PHASES = {"Pending", "Preflight", "Migrating", "Verifying", "Succeeded"}


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def _assert_vmm_path(cluster: Cluster, obj: dict[str, Any]) -> None:
    """The refresh took the VMM path: its phases only, never nested, never tainted, and it says so."""
    status = obj["status"]
    name = obj["metadata"]["name"]
    assert set(status["phaseTimestamps"]) <= VMM_PHASES, status["phaseTimestamps"]
    assert status["agent"]["nestedSeconds"] == 0 and status.get("nestedSeconds", 0) == 0, status
    assert "hostrefresh.io/refreshing" not in status.get("addedTaints", []), status
    assert _condition(obj, "NestedActive")["status"] == "False"
    assert "QEMU" in _condition(obj, "Ready")["message"], _condition(obj, "Ready")
    events = cluster.cp.kubectl("get", "events", "-A", "--field-selector", f"involvedObject.name={name}").stdout
    assert "VMM-only refresh" in events, events


def test_plan_of_vmm_refreshes_over_a_simulated_fleet(
    cluster: Cluster, tmp_path: Path, installed_qemu: QemuBuild
) -> None:
    root = tmp_path / "nodes"
    nodes = [f"vmmf-{i}" for i in range(3)]
    for node in nodes:
        create_sim_node(root, node, SimNodeSpec(sim_vms=3))
        cluster.add_node(node, {"fleet": "vmmf"})
    target = cluster.target_qemu(installed_qemu.binary, "qemu-new")
    with running(operator_process(cluster.cp, tmp_path, "op-vmmf"), agent_process(cluster.cp, tmp_path, nodes)):
        cluster.apply(
            {
                "apiVersion": "hostrefresh.io/v1alpha1",
                "kind": "RefreshPlan",
                "metadata": {"name": "vmmf"},
                "spec": {
                    "nodeSelector": {"matchLabels": {"fleet": "vmmf"}},
                    "target": target,
                    "template": {"scope": "VMM", "handover": {"maxParallel": 1}},
                    "soakSeconds": 0,
                    "maxUnavailable": 2,
                },
            }
        )

        def done() -> bool:
            status = (cluster.get("refreshplan", "vmmf") or {}).get("status") or {}
            return status.get("succeeded") == len(nodes)

        wait_for(done, timeout=120, what="every node's VMs on the new QEMU")
        listed = json.loads(cluster.cp.kubectl("get", "hostrefreshes", "-o", "json").stdout)["items"]
        children = [c for c in listed if c["spec"]["nodeName"] in nodes]
    assert len(children) == len(nodes)
    for child in children:
        assert child["spec"]["scope"] == "VMM"
        assert {vm["result"] for vm in child["status"]["agent"]["vms"]} == {"HandedOver"}
        _assert_vmm_path(cluster, child)
    for node in nodes:
        with open_l0("sim", root / node / "l0.state") as l0:
            state = l0.query()
        assert len(state.running_l1s) == 1 and not state.nested and len(state.partitions) == 1, state.summary()
        taints = cluster.get("node", node)["spec"].get("taints") or []  # type: ignore[index]
        assert not [t for t in taints if t["key"].startswith("hostrefresh.io/")], taints


@pytest.mark.qemu
def test_real_guests_move_from_an_older_qemu_build_to_the_installed_one(
    cluster: Cluster, tmp_path: Path, lab: GuestLab, older_qemu: QemuBuild, installed_qemu: QemuBuild
) -> None:
    with machine_running(cluster, tmp_path, lab, "vmm-up") as node:
        node.launch(VMS, qemu=str(older_qemu.binary))
        assert _binaries(node) == dict.fromkeys(VMS, os.path.realpath(older_qemu.binary))
        target = cluster.target_qemu(installed_qemu.binary, "qemu-installed")
        cluster.host_refresh("vmm-up-hr", node.name, scope="VMM", target=target, handover={"maxParallel": 1})
        obj = _terminal(cluster, node, "vmm-up-hr")
        assert obj["status"]["phase"] == "Succeeded", _diag(obj["status"], node)
        _assert_vmm_path(cluster, obj)
        results = {vm["name"]: vm for vm in obj["status"]["agent"]["vms"]}
        for vm in results.values():
            assert (vm["result"], vm["path"]) == ("HandedOver", "ZeroCopy"), vm
            assert vm["bytesTransferred"] < 1 << 20 and vm["downtimeMillis"] is not None, vm
        _assert_one_host(node, target["qemu"]["binary"])


@pytest.mark.qemu
def test_a_failure_before_the_last_vm_hands_every_vm_back_to_the_older_build(
    cluster: Cluster, tmp_path: Path, lab: GuestLab, older_qemu: QemuBuild, installed_qemu: QemuBuild
) -> None:
    """The last VM cannot move (no shared RAM, copy fallback off): the two moved first come back."""
    with machine_running(cluster, tmp_path, lab, "vmm-back") as node:
        node.launch(VMS[:2], qemu=str(older_qemu.binary))
        node.launch(VMS[2:], qemu=str(older_qemu.binary), shared=False)
        target = cluster.target_qemu(installed_qemu.binary, "qemu-installed")
        handover = {"maxParallel": 1, "copyFallback": False}
        cluster.host_refresh("vmm-back-hr", node.name, scope="VMM", target=target, handover=handover)
        obj = _terminal(cluster, node, "vmm-back-hr")
        status = obj["status"]
        assert status["phase"] == "RolledBack", _diag(status, node)
        results = {vm["name"]: vm["result"] for vm in status["agent"]["vms"]}
        assert results == dict.fromkeys(VMS, "HandedBack"), results
        assert "copy fallback is disabled" in _condition(obj, "Degraded")["message"]
        assert status["agent"]["nestedSeconds"] == 0
        _assert_one_host(node, str(older_qemu.binary))


@pytest.mark.qemu
def test_a_target_that_is_no_qemu_is_refused_before_anything_moves(
    cluster: Cluster, tmp_path: Path, lab: GuestLab, older_qemu: QemuBuild
) -> None:
    with machine_running(cluster, tmp_path, lab, "vmm-refuse") as node:
        node.launch(VMS[:1], qemu=str(older_qemu.binary))
        fake = tmp_path / "fake" / "bin" / "qemu-system-x86_64"
        fake.parent.mkdir(parents=True)
        shutil.copy("/bin/true", fake)
        target = cluster.target_qemu(fake, "not-a-qemu")
        cluster.host_refresh("vmm-refuse-hr", node.name, scope="VMM", target=target)
        obj = _terminal(cluster, node, "vmm-refuse-hr")
        status = obj["status"]
        assert status["phase"] == "RolledBack", _diag(status, node)
        degraded = _condition(obj, "Degraded")
        assert "spec.target.qemu" in degraded["message"] and "is not a QEMU system emulator" in degraded["message"]
        assert degraded["message"].startswith("step Preflight failed"), degraded
        assert not any(vm.get("result") == "HandedOver" for vm in status["agent"].get("vms", []))
        _assert_one_host(node, str(older_qemu.binary), VMS[:1])


def _binaries(node: TwoHostNode) -> dict[str, str]:
    out = {}
    for record in node.records(1).values():
        inst = record.instances["source"]
        out[record.name] = os.path.realpath(os.readlink(f"/proc/{_outside_pid(node, inst.qmp_socket)}/exe"))
    return out


def _outside_pid(node: TwoHostNode, qmp_socket: str) -> int:
    """The pid (as this test sees it) of the QEMU whose command line names ``qmp_socket``."""
    for q in node.qemus():
        if qmp_socket in q.cmdline:
            return q.pid
    raise AssertionError(f"no QEMU with {qmp_socket}: {node.qemus()}")


def _assert_one_host(node: TwoHostNode, binary: str, vms: list[str] = VMS) -> None:
    """Host L1 1 still the only host, one QEMU per guest there, each of ``binary``, memory intact."""
    assert node.running_l1s() == [1], node.l0_state().summary()
    state = node.l0_state()
    assert not state.nested and len(state.partitions) == 1, state.summary()
    qemus = node.qemus()
    assert len(qemus) == len(vms), f"{qemus}\n{node.logs()}"
    assert {q.pidns for q in qemus} == {node.pidns(1)}
    assert _binaries(node) == dict.fromkeys(vms, os.path.realpath(binary))
    node.verify_all(vms)


@pytest.mark.qemu
def test_the_agent_killed_while_vms_move_and_its_successor_finishes(
    cluster: Cluster, tmp_path: Path, lab: GuestLab, older_qemu: QemuBuild, installed_qemu: QemuBuild
) -> None:
    """Copied (not shared) RAM makes each move last long enough to kill the agent in the middle of one."""
    with machine_running(cluster, tmp_path, lab, "vmm-kill") as node:
        node.launch(VMS, qemu=str(older_qemu.binary), shared=False, memory_mib=256)
        target = cluster.target_qemu(installed_qemu.binary, "qemu-installed")
        cluster.host_refresh("vmm-kill-hr", node.name, scope="VMM", target=target, handover={"maxParallel": 1})
        _wait_step(cluster, "vmm-kill-hr", "Migrating")
        killed = node.kill_agent(1)
        obj = _terminal(cluster, node, "vmm-kill-hr")
        assert obj["status"]["phase"] == "Succeeded", _diag(obj["status"], node)
        assert killed not in node.members(node.pidns(1) or ""), "the killed agent still runs"
        _assert_vmm_path(cluster, obj)
        assert {vm["result"] for vm in obj["status"]["agent"]["vms"]} == {"HandedOver"}, obj["status"]["agent"]
        _assert_one_host(node, target["qemu"]["binary"])
