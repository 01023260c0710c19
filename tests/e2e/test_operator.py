"""HostRefresh lifecycle against the real control plane: admission, deletion, silence, node marks, KubeVirt."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.api.names import (
    HOST_REFRESHED_AT_ANNOTATION,
    HOST_REFRESHED_BY_ANNOTATION,
    HOST_VERSION_KEY,
    NODE_LABEL,
)
from hostrefresh.kube.names import AGENT_COMPONENT_LABEL, DEFAULT_NAMESPACE, agent_lease_name
from hostrefresh.l0 import Call, open_l0

from .harness import Cluster, Process, agent_process, operator_process, running, slow_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]
TERMINAL = {"Succeeded", "RolledBack", "Failed"}


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_second_refresh_of_a_node_waits_then_runs(cluster: Cluster, tmp_path: Path) -> None:
    node = "op-busy"
    slow_node(tmp_path / "nodes", node, Call.L1_BOOT, 2.0)
    cluster.add_node(node)
    with running(operator_process(cluster.cp, tmp_path, "op-busy"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh("busy-first", node, "2.0")
        wait_for(lambda: cluster.phase("busy-first") not in (None, "Pending"), what="first started")
        cluster.host_refresh("busy-second", node, "3.0")

        def blocked() -> dict[str, Any] | None:
            obj = cluster.get("hostrefresh", "busy-second")
            if obj and (obj.get("status") or {}).get("conditions"):
                return obj
            return None

        second = wait_for(blocked, what="second has conditions")
        progressing = _condition(second, "Progressing")
        assert second["status"]["phase"] == "Pending"
        assert (progressing["status"], progressing["reason"]) == ("False", "NodeBusy")
        assert "busy-first" in progressing["message"]
        assert cluster.wait_phase("busy-first", TERMINAL)["status"]["phase"] == "Succeeded"
        assert cluster.wait_phase("busy-second", TERMINAL)["status"]["phase"] == "Succeeded"
    assert "BlockedNodeBusy" in cluster.event_reasons("busy-second")


def test_deletion_mid_refresh_rolls_back_then_lets_go(cluster: Cluster, tmp_path: Path) -> None:
    node = "op-delete"
    slow_node(tmp_path / "nodes", node, Call.L1_BOOT, 2.0)
    cluster.add_node(node)
    with running(operator_process(cluster.cp, tmp_path, "op-del"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh("del-hr", node)
        wait_for(lambda: cluster.phase("del-hr") == "BootingTarget", interval=0.05, what="BootingTarget")
        cluster.cp.kubectl("delete", "hostrefresh", "del-hr", "--wait=false")
        wait_for(lambda: cluster.get("hostrefresh", "del-hr") is None, timeout=60, what="deletion completes")
    with open_l0("sim", tmp_path / "nodes" / node / "l0.state") as l0:
        state = l0.query()
    assert [x.id for x in state.running_l1s] == [1] and not state.nested and len(state.partitions) == 1
    assert "DeletedMidRefresh" in cluster.event_reasons("del-hr")
    node_obj = cluster.get("node", node)
    assert node_obj is not None
    assert not [t for t in node_obj["spec"].get("taints") or [] if t["key"] == "hostrefresh.io/refreshing"]


def test_silent_agent_leads_to_rollback(cluster: Cluster, tmp_path: Path) -> None:
    node = "op-silent"
    slow_node(tmp_path / "nodes", node, Call.L1_BOOT, 3.0)
    cluster.add_node(node)
    op = operator_process(cluster.cp, tmp_path, "op-silent")
    first = agent_process(cluster.cp, tmp_path, [node], name="silent-first")
    with running(op):
        first.start()
        cluster.host_refresh("silent-hr", node, timeouts={"agentSilenceSeconds": 20})
        wait_for(lambda: cluster.phase("silent-hr") == "BootingTarget", interval=0.05, what="BootingTarget")
        first.kill()
        wait_for(lambda: cluster.phase("silent-hr") == "RollingBack", timeout=60, what="rollback decided")
        obj = cluster.get("hostrefresh", "silent-hr")
        assert obj is not None and _condition(obj, "Degraded")["reason"] == "AgentSilent"
        with running(agent_process(cluster.cp, tmp_path, [node], name="silent-second")):
            done = cluster.wait_phase("silent-hr", TERMINAL, timeout=60)
    assert done["status"]["phase"] == "RolledBack"


def test_node_marks_are_restored_exactly(cluster: Cluster, tmp_path: Path) -> None:
    node = "op-marks"
    cluster.add_node(node)
    # Someone else cordoned the node, tainted it, and annotated it before the refresh.
    cluster.cp.kubectl("cordon", node)
    cluster.cp.kubectl("taint", "node", node, "dedicated=db:NoSchedule")
    cluster.cp.kubectl("annotate", "node", node, "example.com/owner=team-a")
    before = cluster.get("node", node)
    assert before is not None
    seen_marked: list[bool] = []
    slow_node(tmp_path / "nodes", node, Call.L1_BOOT, 1.5)
    with running(operator_process(cluster.cp, tmp_path, "op-marks"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh("marks-hr", node)

        def marked() -> bool:
            obj = cluster.get("node", node) or {}
            taints = {t["key"]: t for t in obj.get("spec", {}).get("taints") or []}
            ok = "hostrefresh.io/refreshing" in taints and "hostrefresh.io/refreshing" in obj["metadata"].get(
                "annotations", {}
            )
            seen_marked.append(ok)
            return ok

        wait_for(marked, timeout=30, interval=0.05, what="node tainted and annotated during the refresh")
        assert cluster.wait_phase("marks-hr", TERMINAL)["status"]["phase"] == "Succeeded"

        def recorded() -> bool:
            obj = cluster.get("node", node) or {}
            return HOST_REFRESHED_BY_ANNOTATION in (obj.get("metadata", {}).get("annotations") or {})

        wait_for(recorded, timeout=30, interval=0.05, what="the node's record of what it runs")
    after = cluster.get("node", node)
    assert after is not None
    assert after["spec"].get("unschedulable") is True  # still cordoned: not ours to undo
    assert sorted(json.dumps(t, sort_keys=True) for t in after["spec"]["taints"]) == sorted(
        json.dumps(t, sort_keys=True) for t in before["spec"]["taints"]
    )
    # Our marks are gone; what stays is the record of what the node runs now.
    annotations = dict(after["metadata"].get("annotations") or {})
    record = {k: annotations.pop(k, None) for k in (HOST_VERSION_KEY, HOST_REFRESHED_BY_ANNOTATION)}
    assert record == {HOST_VERSION_KEY: "2.0", HOST_REFRESHED_BY_ANNOTATION: "marks-hr"}
    assert annotations.pop(HOST_REFRESHED_AT_ANNOTATION, None)
    assert annotations == before["metadata"].get("annotations")
    assert after["metadata"]["labels"].get(HOST_VERSION_KEY) == "2.0"


def test_a_taint_with_our_key_set_by_someone_else_is_left_alone(cluster: Cluster, tmp_path: Path) -> None:
    node = "op-foreign"
    cluster.add_node(node)
    cluster.cp.kubectl("taint", "node", node, "hostrefresh.io/refreshing=manual:NoSchedule")
    with running(operator_process(cluster.cp, tmp_path, "op-foreign"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh("foreign-hr", node)
        assert cluster.wait_phase("foreign-hr", TERMINAL)["status"]["phase"] == "Succeeded"
    after = cluster.get("node", node)
    assert after is not None
    ours = [t for t in after["spec"]["taints"] if t["key"] == "hostrefresh.io/refreshing"]
    assert ours == [{"key": "hostrefresh.io/refreshing", "value": "manual", "effect": "NoSchedule"}]


VMI_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "virtualmachineinstances.kubevirt.io"},
    "spec": {
        "group": "kubevirt.io",
        "scope": "Namespaced",
        "names": {
            "kind": "VirtualMachineInstance",
            "plural": "virtualmachineinstances",
            "singular": "virtualmachineinstance",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def _vmi(name: str, node: str, gpu: bool) -> dict[str, Any]:
    devices: dict[str, Any] = {"gpus": [{"name": "g", "deviceName": "nvidia.com/A100"}]} if gpu else {}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"domain": {"devices": devices}},
        "status": {"nodeName": node},
    }


def test_kubevirt_vmis_are_counted_and_unmovable_ones_block(cluster: Cluster, tmp_path: Path) -> None:
    cluster.apply(VMI_CRD)
    cluster.cp.kubectl("wait", "--for=condition=Established", "crd/virtualmachineinstances.kubevirt.io")
    node = "op-kubevirt"
    cluster.add_node(node)
    cluster.apply(_vmi("web-1", node, gpu=False))
    cluster.apply(_vmi("gpu-1", node, gpu=True))
    with running(operator_process(cluster.cp, tmp_path, "op-kv"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh("kv-block", node)

        def blocked() -> dict[str, Any] | None:
            obj = cluster.get("hostrefresh", "kv-block")
            conds = (obj or {}).get("status", {}).get("conditions") or []
            return obj if any(c["reason"] == "UnmovableVMs" for c in conds) else None

        obj = wait_for(blocked, timeout=30, what="blocked by the GPU VMI")
        assert obj["status"]["vmis"] == {"total": 2, "unmovable": ["default/gpu-1"]}
        assert "gpu-1" in _condition(obj, "Progressing")["message"]
        cluster.cp.kubectl("delete", "hostrefresh", "kv-block")
        cluster.host_refresh("kv-proceed", node, unmovableVMPolicy="Proceed")
        done = cluster.wait_phase("kv-proceed", TERMINAL)
    assert done["status"]["phase"] == "Succeeded"
    assert done["status"]["vmis"]["unmovable"] == ["default/gpu-1"]


def _lease(name: str, namespace: str, node: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**AGENT_COMPONENT_LABEL, NODE_LABEL: node},
        },
        "spec": {"holderIdentity": "forger", "leaseDurationSeconds": 3600, "renewTime": now},
    }


def test_only_the_node_agents_own_lease_counts_as_its_heartbeat(cluster: Cluster, tmp_path: Path) -> None:
    """Fresh Leases labelled for the node, but elsewhere or under another name, do not make a node
    without an agent look alive: its refresh waits for the agent, and starts once the agent runs."""
    node = "op-forged"
    slow_node(tmp_path / "nodes", node, Call.L1_BOOT, 0.0)
    cluster.add_node(node)
    cluster.apply(_lease(agent_lease_name(node), "default", node))
    cluster.apply(_lease("not-the-agents-lease", DEFAULT_NAMESPACE, node))
    with running(operator_process(cluster.cp, tmp_path, "op-forged")):
        cluster.host_refresh("forged-hr", node)

        def waiting_for_agent() -> dict[str, Any] | None:
            obj = cluster.get("hostrefresh", "forged-hr")
            conditions = ((obj or {}).get("status") or {}).get("conditions") or []
            return obj if any(c.get("reason") == "AgentNotAlive" for c in conditions) else None

        obj = wait_for(waiting_for_agent, timeout=60, what="the refresh waiting for the node's agent")
        assert obj["status"].get("directive") != "Proceed", obj["status"]
        with running(agent_process(cluster.cp, tmp_path, [node], name="forged-agent")):
            done = cluster.wait_phase("forged-hr", TERMINAL, timeout=120)
    assert done["status"]["phase"] == "Succeeded"


def test_a_node_without_an_l0_gets_no_host_refresh_and_is_told_why(cluster: Cluster, tmp_path: Path) -> None:
    """The real agent, as the chart runs it (vmcall backend), on this machine, which has no L0 under it:
    its Lease says so, and the operator lets a host refresh wait, nothing tainted, naming the fix."""
    node = "no-l0"
    cluster.add_node(node)
    for sub in ("vms", "state", "images"):
        (tmp_path / sub).mkdir()
    agent = Process(
        [
            sys.executable,
            "-m",
            "hostrefresh.nodeagent.main",
            f"--kubeconfig={cluster.cp.kubeconfig}",
            f"--namespace={DEFAULT_NAMESPACE}",
            f"--node={node}",
            "--l0-backend=vmcall",
            f"--vm-runtime={tmp_path / 'vms'}",
            f"--state-dir={tmp_path / 'state'}",
            f"--image-dir={tmp_path / 'images'}",
            "--lease-seconds=10",
            "--identity=agent-no-l0",
        ],
        tmp_path / "agent-no-l0.log",
    )
    with running(operator_process(cluster.cp, tmp_path, "op-no-l0"), agent):
        lease_name = agent_lease_name(node)

        def reported() -> dict[str, Any] | None:
            lease = cluster.get("lease", lease_name, DEFAULT_NAMESPACE) or {}
            text = ((lease.get("metadata") or {}).get("annotations") or {}).get("hostrefresh.io/capabilities")
            return json.loads(text) if text else None

        report = wait_for(reported, timeout=30, what=f"{node}: the agent's capabilities on its Lease")
        assert report["l0"] == "absent" and report["l0Backend"] == "vmcall", report
        cluster.host_refresh("no-l0-hr", node)

        def waiting() -> dict[str, Any] | None:
            status = (cluster.get("hostrefresh", "no-l0-hr") or {}).get("status") or {}
            conds = {c["type"]: c for c in status.get("conditions") or []}
            return conds.get("Progressing") if conds.get("Progressing", {}).get("reason") == "NoL0" else None

        progressing = wait_for(waiting, timeout=30, what="the refresh waiting for an L0")
        assert "spec.scope: VMM" in progressing["message"], progressing
        status = (cluster.get("hostrefresh", "no-l0-hr") or {}).get("status") or {}
        assert status.get("directive") == "Wait" and not status.get("addedTaints"), status
        taints = ((cluster.get("node", node) or {}).get("spec") or {}).get("taints") or []
        assert not [t for t in taints if t["key"].startswith("hostrefresh.io/")], taints
