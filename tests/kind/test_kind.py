"""hostrefresh installed for real: the chart with default values on a kind cluster built here (1 control
plane, 3 hypervisor workers), its operator and agent pods running the images `make images` builds,
real QEMU test guests on every worker, and a RefreshPlan that holds after its canary until approved
and survives losing its leading operator pod and an agent pod mid-refresh. The L0 is the simulator (kind nodes are containers: no L0 under them),
and each agent's sysfs is a simulated one inside its node, never the machine's CPUs and memory.

The tests share one cluster and run in file order: the later ones read what the plan test left."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.api.names import CAPABILITIES_ANNOTATION
from hostrefresh.kube.names import agent_lease_name
from hostrefresh.sim.guest.build import guest_image

from .conftest import NAMESPACE, Kind, wait_until

# The first test sets the cluster up. `make test` builds the images, node image and kind tools first
# (make test-setup), so up.sh only creates the cluster; run alone on a machine that has built nothing,
# up.sh builds them all (about 30 minutes on 2 cores) under its own 40-minute limit, which pytest-timeout
# must not cut short.
pytestmark = [pytest.mark.kind, pytest.mark.slow, pytest.mark.timeout(2700)]

STATE = "/var/lib/hostrefresh"
VMCTL = ("python3", "-m", "hostrefresh.sim.guest.vmctl", f"--vm-runtime={STATE}/vms")
GUESTS = ("vm-a", "vm-b")
KERNEL = f"{STATE}/images/vmlinuz-2.0"
#: The simulated target kernel the plan test puts on every worker, and its checksum.
KERNEL_BYTES = b"simulated host kernel 2.0\n" * 64
TARGET = {"version": "2.0", "kernel": KERNEL, "checksum": f"sha256:{hashlib.sha256(KERNEL_BYTES).hexdigest()}"}
TERMINAL = {"Succeeded", "Failed", "RolledBack"}


def _refreshes(kind: Kind) -> dict[str, dict[str, Any]]:
    """Node name -> HostRefresh."""
    return {r["spec"]["nodeName"]: r for r in kind.get("hostrefreshes")["items"]}


def _verify_guests(kind: Kind, node: str) -> dict[str, Any]:
    result = kind.in_agent(node, *VMCTL, "verify", *GUESTS)
    assert result.returncode == 0, f"guests on {node}: {result.stdout} {result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _in_vm_cgroup(kind: Kind, node: str, pid: int) -> bool:
    cgroups = kind.docker("exec", node, "cat", f"/proc/{pid}/cgroup").stdout
    return all(line.endswith("/hostrefresh-vms") for line in cgroups.splitlines() if line)


def test_chart_defaults_operator_leads_and_one_agent_per_worker(kind_cluster: Kind) -> None:
    kind = kind_cluster
    deploy = kind.get("deployment", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"][0]
    assert deploy["spec"]["replicas"] == 2 and deploy["status"].get("readyReplicas") == 2, deploy["status"]
    pods = kind.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=operator")["items"]
    names = {p["metadata"]["name"] for p in pods}
    lease = wait_until(
        lambda: kind.get("lease", "-n", NAMESPACE, "hostrefresh-operator")["spec"].get("holderIdentity") or None,
        60,
        "an operator leader",
    )
    assert lease in names, (lease, names)
    workers = kind.workers()
    assert len(workers) == 3
    agents = kind.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=agent")["items"]
    assert sorted(p["spec"]["nodeName"] for p in agents) == workers  # one per hypervisor, none elsewhere

    def unready() -> list[Any]:
        pods = kind.get("pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=agent")["items"]
        return [
            (p["metadata"]["name"], p["status"].get("containerStatuses"))
            for p in pods
            if {c["type"]: c["status"] for c in p["status"]["conditions"]}.get("Ready") != "True"
        ]

    # Ready at once after `helm --wait`, or within a probe period or two on a loaded machine.
    deadline = time.monotonic() + 90
    while (pending := unready()) and time.monotonic() < deadline:
        time.sleep(2)
    assert not pending, pending


def test_plan_over_three_workers_survives_operator_and_agent_pod_deletion(kind_cluster: Kind) -> None:
    kind = kind_cluster
    # A cluster kept from an earlier run (HOSTREFRESH_KIND_KEEP) starts over.
    kind.kubectl("delete", "refreshplan", "kind-fleet", "--ignore-not-found", "--wait=true")
    kind.kubectl("delete", "hostrefreshes", "--all", "--wait=true")
    workers = kind.workers()
    image = guest_image()
    kernel = KERNEL_BYTES
    checksum = hashlib.sha256(kernel).hexdigest()
    for node in workers:
        kind.docker("exec", node, "mkdir", "-p", f"{STATE}/guest", f"{STATE}/images")
        kind.docker("cp", str(image), f"{node}:{STATE}/guest/hrguest.bin")
        kind.docker("exec", node, "sh", "-c", f"printf '%s' '{kernel.decode()}' > {KERNEL}")
        launched = kind.in_agent(
            node,
            *VMCTL,
            "launch",
            *GUESTS,
            f"--image={STATE}/guest/hrguest.bin",
            f"--ram-dir={STATE}/ram",
            "--vm-cgroup=hostrefresh-vms",
        )
        assert launched.returncode == 0, launched.stderr
        for vm in json.loads(launched.stdout).values():
            assert _in_vm_cgroup(kind, node, vm["pid"])
        assert all(r["ok"] for r in _verify_guests(kind, node).values())
    assert kind.docker("exec", workers[0], "sha256sum", KERNEL).stdout.split()[0] == checksum
    # The second worker's new host boots slowly (the simulated L0 takes 8 s), so that its agent pod can
    # be deleted while the refresh runs.
    slow = workers[1]
    inject = (
        "from hostrefresh.l0 import Call, FaultRule, Status, open_l0\n"
        f"with open_l0('sim', '{STATE}/sim/l0.state') as l0:\n"
        "    l0.sim_inject_fault(FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=8.0, times=1))\n"
    )
    assert kind.in_agent(slow, "python3", "-c", inject).returncode == 0

    plan = {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "RefreshPlan",
        "metadata": {"name": "kind-fleet"},
        "spec": {
            "nodeSelector": {"matchLabels": {"hostrefresh.io/pool": "compute"}},
            "target": TARGET,
            "template": {"partition": {"cpus": 2, "memory": "1Gi"}},
            "maxUnavailable": 1,
            "soakSeconds": 0,
            # The rollout holds after its canary until approved (the kind cluster's `kubectl hostrefresh approve`).
            "approval": {"afterCanary": True},
        },
    }
    path = kind.kubeconfig.parent / "plan.json"
    path.write_text(json.dumps(plan))
    kind.kubectl("apply", "-f", str(path))

    # The leading operator pod goes once the rollout has started.
    wait_until(lambda: _refreshes(kind), 60, "the plan's first HostRefresh")
    leader = kind.get("lease", "-n", NAMESPACE, "hostrefresh-operator")["spec"]["holderIdentity"]
    kind.kubectl("delete", "pod", "-n", NAMESPACE, leader, "--wait=false")

    # The canary refreshed, the plan waits for approval (asked of the new leader), and nothing else started.
    def awaiting() -> dict[str, Any] | None:
        status = kind.get("refreshplan", "kind-fleet").get("status") or {}
        return status if status.get("awaitingApproval") == 2 else None

    status = wait_until(awaiting, 300, "the plan waits for approval after its canary", interval=1)
    assert status.get("succeeded") == 1 and len(_refreshes(kind)) == 1, status
    approved = kind.kubectl("hostrefresh", "approve", "kind-fleet")
    assert "wave 2 approved" in approved.stdout, approved.stdout + approved.stderr

    # The slow worker's agent pod goes while its new host boots. The agent's own report says so: the
    # operator's phase may skip BootingTarget while no replica leads (the leader was just deleted).
    def booting() -> bool:
        agent = ((_refreshes(kind).get(slow) or {}).get("status") or {}).get("agent") or {}
        return agent.get("step") == "BootingTarget" and agent.get("stepState") == "Running"

    wait_until(booting, 240, f"{slow} in BootingTarget", interval=0.3)
    old_agent = kind.agent_pods()[slow]
    kind.kubectl("delete", "pod", "-n", NAMESPACE, old_agent, "--wait=false")
    wait_until(
        lambda: kind.agent_pods().get(slow) not in (None, old_agent), 120, f"a new agent pod on {slow}", interval=0.5
    )

    def done() -> dict[str, Any] | None:
        status = kind.get("refreshplan", "kind-fleet").get("status") or {}
        return status if status.get("succeeded") == 3 or status.get("failed") else None

    status = wait_until(done, 420, "the plan over 3 workers", interval=2)
    refreshes = _refreshes(kind)
    assert status.get("succeeded") == 3, (status, {n: r.get("status") for n, r in refreshes.items()})
    new_leader = kind.get("lease", "-n", NAMESPACE, "hostrefresh-operator")["spec"]["holderIdentity"]
    assert new_leader != leader
    for node in workers:
        st = refreshes[node]["status"]
        assert st["phase"] == "Succeeded", st
        assert {vm["name"]: vm["result"] for vm in st["agent"]["vms"]} == dict.fromkeys(GUESTS, "HandedOver")
        report = _verify_guests(kind, node)
        for name, vm in report.items():
            assert vm["ok"] and vm["pagesChecked"] > 0, (node, name, vm)
            assert _in_vm_cgroup(kind, node, vm["pid"]), (node, name, vm["pid"])

    # The guests now run in QEMUs the agents started: an agent pod's end must not take them along.
    first = workers[0]
    before = _verify_guests(kind, first)
    pod = kind.agent_pods()[first]
    kind.kubectl("delete", "pod", "-n", NAMESPACE, pod, "--wait=true", timeout=180)
    wait_until(lambda: kind.agent_pods().get(first) not in (None, pod), 120, f"a new agent pod on {first}")
    after = _verify_guests(kind, first)
    assert {n: v["pid"] for n, v in after.items()} == {n: v["pid"] for n, v in before.items()}
    assert all(v["ok"] for v in after.values())


def test_describe_and_plugin_show_what_a_user_needs(kind_cluster: Kind) -> None:
    kind = kind_cluster
    node = kind.workers()[0]
    name = _refreshes(kind)[node]["metadata"]["name"]
    described = kind.kubectl("describe", "hostrefresh", name).stdout
    for needle in ("Phase:", "Succeeded", "Conditions:", "Ready", "PreflightPassed", node):
        assert needle in described, (needle, described)
    table = kind.kubectl("hostrefresh", "get").stdout
    for worker in kind.workers():
        assert worker in table, table
    assert table.count("Succeeded") >= 3, table
    plan = kind.kubectl("get", "refreshplan", "kind-fleet").stdout
    assert "kind-fleet" in plan


def test_agent_token_cannot_touch_another_workers_refresh(kind_cluster: Kind, tmp_path: Path) -> None:
    kind = kind_cluster
    node_a, node_b = kind.workers()[:2]
    refreshes = _refreshes(kind)
    token = kind.in_agent(node_a, "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token").stdout.strip()
    assert token
    admin = json.loads(kind.kubectl("config", "view", "--raw", "-o", "json").stdout)
    cluster = admin["clusters"][0]["cluster"]
    config = tmp_path / "agent-a.kubeconfig"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kind", "cluster": cluster}],
                "users": [{"name": "agent-a", "user": {"token": token}}],
                "contexts": [{"name": "agent-a", "context": {"cluster": "kind", "user": "agent-a"}}],
                "current-context": "agent-a",
            }
        )
    )

    def patch(node: str) -> Any:
        return kind.kubectl(
            f"--kubeconfig={config}",
            "patch",
            "hostrefresh",
            refreshes[node]["metadata"]["name"],
            "--subresource=status",
            "--type=merge",
            "--dry-run=server",
            "-p",
            json.dumps({"status": {"agent": {"message": "from the agent of " + node_a}}}),
            check=False,
        )

    whoami = json.loads(kind.kubectl(f"--kubeconfig={config}", "auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["extra"]["authentication.kubernetes.io/node-name"] == [node_a]
    own = patch(node_a)
    assert own.returncode == 0, own.stderr
    other = patch(node_b)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower(), other.stderr
    assert f"is for node {node_b}" in other.stderr, other.stderr


def test_without_an_l0_a_host_refresh_waits_and_nothing_is_touched(kind_cluster: Kind) -> None:
    """With the chart's default L0 backend (vmcall), kind's workers (containers: no L0 under them) are
    what a cluster without the L0 installed looks like. Each agent says so on its Lease, and a host
    refresh there waits with NoL0: not granted, the node not tainted. The kind values come back after."""
    kind = kind_cluster
    node = kind.workers()[2]
    helm = str(kind.bin_dir / "helm")
    chart = str(Path(__file__).resolve().parents[2] / "charts" / "hostrefresh")

    def upgrade(backend: str) -> None:
        set_backend, wait = f"agent.l0Backend={backend}", ("--wait", "--timeout", "5m")
        # --reuse-values keeps what up.sh installed (the kind values and the images' immutable tag).
        result = subprocess.run(
            [helm, "upgrade", "hostrefresh", chart, "-n", NAMESPACE, "--reuse-values", "--set", set_backend, *wait],
            env={**os.environ, "KUBECONFIG": str(kind.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert result.returncode == 0, result.stderr

    def capabilities() -> dict[str, Any]:
        lease = kind.get("lease", "-n", NAMESPACE, agent_lease_name(node))
        text = (lease["metadata"].get("annotations") or {}).get(CAPABILITIES_ANNOTATION)
        return dict(json.loads(text)) if text else {}

    upgrade("vmcall")
    try:
        report = wait_until(lambda: (c := capabilities()).get("l0Backend") == "vmcall" and c, 180, "the agent's report")
        assert report["l0"] == "absent", report
        body = {
            "apiVersion": "hostrefresh.io/v1alpha1",
            "kind": "HostRefresh",
            "metadata": {"name": "kind-no-l0"},
            "spec": {"nodeName": node, "target": TARGET, "partition": {"cpus": 2, "memory": "1Gi"}},
        }
        path = kind.kubeconfig.parent / "no-l0.json"
        path.write_text(json.dumps(body))
        kind.kubectl("apply", "-f", str(path))

        def waiting() -> dict[str, Any] | None:
            status = kind.get("hostrefresh", "kind-no-l0").get("status") or {}
            progressing = {c["type"]: c for c in status.get("conditions") or []}.get("Progressing") or {}
            return status if progressing.get("reason") == "NoL0" else None

        status = wait_until(waiting, 120, "the host refresh waiting for an L0")
        progressing = {c["type"]: c for c in status["conditions"]}["Progressing"]
        assert "spec.scope: VMM" in progressing["message"], progressing
        assert status.get("directive") == "Wait" and not status.get("addedTaints"), status
        taints = kind.get("node", node)["spec"].get("taints") or []
        assert not [t for t in taints if t["key"].startswith("hostrefresh.io/")], taints
        assert "NoL0" in kind.kubectl("describe", "hostrefresh", "kind-no-l0").stdout
    finally:
        kind.kubectl("delete", "hostrefresh", "kind-no-l0", "--ignore-not-found", "--wait=true")
        upgrade("sim")
