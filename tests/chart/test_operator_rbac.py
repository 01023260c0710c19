"""The operator runs with exactly the chart's RBAC: a real hostrefresh-operator process, authenticated
as the chart's operator service account, drives a RefreshPlan on a private control plane and never
gets a 403.

A private control plane, because the operator acts on every HostRefresh in the cluster and must not
touch other tests' objects; it also shows helm installing the CRDs from the chart's crds/ directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostrefresh.controlplane import ControlPlane
from hostrefresh.operator.objects import EVENT_COMPONENT
from tests.chart.conftest import Release, install
from tests.chart.helpers import manifest_json, now_rfc3339

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NODE = "worker-1"


@pytest.fixture(scope="module")
def private_release(tmp_path_factory: pytest.TempPathFactory, helm_home: Path) -> Iterator[Release]:
    cp = ControlPlane(tmp_path_factory.mktemp("operator-rbac-cp"))
    cp.start()
    try:
        yield install(cp, helm_home, "hr", "hostrefresh-system")
    finally:
        cp.stop()


def _operator_kubeconfig(release: Release, path: Path) -> Path:
    """Kubeconfig of the operator's service account, its namespace as the default (as in a pod)."""
    token = release.cp.kubectl("create", "token", release.operator_sa, "-n", release.namespace).stdout.strip()
    config = yaml.safe_load(release.cp.kubeconfig_text(None, "operator", token=token))
    config["contexts"][0]["context"]["namespace"] = release.namespace
    path.write_text(yaml.safe_dump(config))
    return path


def _get(cp: ControlPlane, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cp.kubectl("get", *args, "-o", "json").stdout)
    return out


def test_helm_installed_the_crds(private_release: Release) -> None:
    cp = private_release.cp
    cp.kubectl("wait", "--for=condition=Established", "crd/hostrefreshes.hostrefresh.io", "--timeout=60s")
    cp.kubectl("wait", "--for=condition=Established", "crd/refreshplans.hostrefresh.io", "--timeout=60s")
    annotations = _get(cp, "crd", "hostrefreshes.hostrefresh.io")["metadata"].get("annotations") or {}
    assert "meta.helm.sh/release-name" not in annotations  # crds/ are installed once, not as release objects


def test_operator_drives_a_plan_with_the_chart_rbac_only(private_release: Release, tmp_path: Path) -> None:
    release, cp = private_release, private_release.cp
    ns = release.namespace
    now = now_rfc3339()
    cp.kubectl(
        "create",
        "-f",
        "-",
        stdin=manifest_json(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": NODE, "labels": {"pool": "compute"}},
            }
        ),
    )
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "ready",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    cp.kubectl(
        "patch",
        "node",
        NODE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [ready]}}),
    )
    # The agent's heartbeat (its own rights are tested in test_agent_scope).
    cp.kubectl(
        "create",
        "-n",
        ns,
        "-f",
        "-",
        stdin=manifest_json(
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": f"hostrefresh-agent-{NODE}",
                    "labels": {"app.kubernetes.io/component": "hostrefresh-agent", "hostrefresh.io/node": NODE},
                },
                "spec": {"holderIdentity": "agent", "leaseDurationSeconds": 600, "renewTime": now},
            }
        ),
    )
    cp.kubectl(
        "create",
        "-f",
        "-",
        stdin=manifest_json(
            {
                "apiVersion": "hostrefresh.io/v1alpha1",
                "kind": "RefreshPlan",
                "metadata": {"name": "compute"},
                "spec": {
                    "nodeSelector": {"matchLabels": {"pool": "compute"}},
                    "target": {
                        "version": "6.12.4-kvm1",
                        "kernel": "/var/lib/hostrefresh/images/vmlinuz",
                        "checksum": "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
                    },
                },
            }
        ),
    )

    log_path = tmp_path / "operator.log"
    argv = [
        sys.executable,
        "-m",
        "hostrefresh.operator.main",
        "--kubeconfig",
        str(_operator_kubeconfig(release, tmp_path / "operator.kubeconfig")),
        "--namespace",
        ns,
        "--identity",
        "hr-operator-0",
        "--log-format",
        "plain",
        "--lease-seconds",
        "5",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        tainted, children = False, []
        while time.monotonic() < deadline and proc.poll() is None:
            node = _get(cp, "node", NODE)
            tainted = any(t["key"] == "hostrefresh.io/refreshing" for t in node["spec"].get("taints") or [])
            children = _get(cp, "hostrefreshes")["items"]
            if tainted and children and (children[0].get("status") or {}).get("directive") == "Proceed":
                break
            time.sleep(0.5)
        time.sleep(2)  # a few more reconciles, timers and Events under the same identity
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text()
    forbidden = [line for line in log_text.splitlines() if "403" in line or "orbidden" in line or "permission" in line]
    assert not forbidden, "the operator hit RBAC walls:\n" + "\n".join(forbidden)

    # What it did, all with the chart's RBAC: created the plan's child, granted it, marked the node,
    # held the leader Lease, posted Events where kubectl looks for those of cluster-scoped objects.
    assert tainted, log_text[-4000:]
    [child] = children
    assert child["spec"]["nodeName"] == NODE and child["metadata"]["labels"]["hostrefresh.io/plan"] == "compute"
    assert child["status"]["directive"] == "Proceed"
    assert "hostrefresh.io/finalizer" in child["metadata"]["finalizers"]
    node = _get(cp, "node", NODE)
    assert node["metadata"]["annotations"]["hostrefresh.io/refreshing"] == child["metadata"]["name"]
    leader = _get(cp, "lease", "hostrefresh-operator", "-n", ns)
    assert leader["spec"]["holderIdentity"] == "hr-operator-0"
    # (The namespace has the API server's own Events too, e.g. about ClusterIP allocations.)
    events = [e for e in _get(cp, "events", "-n", "default")["items"] if e.get("reportingComponent") == EVENT_COMPONENT]
    assert events and all(e["involvedObject"]["kind"] in ("HostRefresh", "RefreshPlan", "Node") for e in events)
    assert all("namespace" not in e["involvedObject"] for e in events)
    # The node itself tells `kubectl describe node` that a refresh started on it.
    assert any(e["involvedObject"]["kind"] == "Node" and e["reason"] == "HostRefreshStarted" for e in events)
    assert "NodeRefreshStarted" in cp.kubectl("events", "--for", "refreshplan/compute").stdout
    plan = _get(cp, "refreshplan", "compute")
    assert plan["status"]["nodes"] == 1
