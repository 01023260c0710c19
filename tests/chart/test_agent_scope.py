"""The real security test: an agent with a pod-bound token may only touch its own node's objects.

A Pod object bound to node A with the agent's service account (it never runs: no kubelet) gets a
pod-bound token from TokenRequest; its user info carries extra authentication.kubernetes.io/node-name.
Acting with that token through kubectl, the agent may write status.agent of node A's HostRefresh and
its own heartbeat Lease, and nothing else: the chart's RBAC and ValidatingAdmissionPolicies refuse the
rest, with the policies' own messages.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.api.names import NODE_ANNOTATION, NODE_LABEL, label_value
from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.names import agent_lease_name
from hostrefresh.operator.objects import heartbeat_node
from tests.chart.conftest import TARGET_IMAGES_LABEL, Release
from tests.chart.helpers import manifest_json, now_rfc3339, unique

pytestmark = pytest.mark.integration

TARGET = {
    "version": "6.12.4-kvm1",
    "kernel": "/var/lib/hostrefresh/images/vmlinuz",
    "checksum": "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
}
OPERATOR_STATUS = {
    "phase": "Preflight",
    "directive": "Proceed",
    "observedGeneration": 1,
    "startedAt": "2026-01-01T00:00:00Z",
    "addedTaints": ["hostrefresh.io/refreshing:NoSchedule"],
}


@dataclass(frozen=True)
class Scene:
    release: Release
    node_a: str
    node_b: str
    refresh_a: str
    refresh_b: str
    agent_a: Path  # kubeconfig of node A's agent (token bound to a Pod on node A)
    agent_b: Path  # kubeconfig of node B's agent
    unbound: Path  # kubeconfig with a token of the agent's service account bound to no Pod

    @property
    def cp(self) -> ControlPlane:
        return self.release.cp

    @property
    def hostrefresh_policy(self) -> str:
        return f"ValidatingAdmissionPolicy '{self.release.fullname}-agent-hostrefresh'"

    @property
    def lease_policy(self) -> str:
        return f"ValidatingAdmissionPolicy '{self.release.fullname}-agent-lease'"

    def refresh(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.cp.kubectl("get", "hostrefresh", name, "-o", "json").stdout)
        return out

    def as_agent(self, kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl(*args, stdin=stdin, check=False, kubeconfig=kubeconfig)

    def patch_status(self, kubeconfig: Path, name: str, status: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.as_agent(
            kubeconfig,
            "patch",
            "hostrefresh",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )


def _create(cp: ControlPlane, obj: dict[str, Any]) -> None:
    cp.kubectl("create", "-f", "-", stdin=manifest_json(obj))


def _agent_pod_token(release: Release, node: str) -> str:
    """A Pod on ``node`` running as the agent, and a token bound to it (as the kubelet would request)."""
    pod = unique("agent")
    _create(
        release.cp,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": release.namespace},
            "spec": {
                "nodeName": node,
                "serviceAccountName": release.agent_sa,
                # The ServiceAccount admission plugin is off in the test control plane.
                "automountServiceAccountToken": False,
                "containers": [{"name": "agent", "image": "hostrefresh:test"}],
            },
        },
    )
    out = release.cp.kubectl(
        "create",
        "token",
        release.agent_sa,
        "-n",
        release.namespace,
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        pod,
    )
    return out.stdout.strip()


def _hostrefresh(cp: ControlPlane, node: str, release: str) -> str:
    name = unique(f"refresh-{node}")
    _create(
        cp,
        {
            "apiVersion": "hostrefresh.io/v1alpha1",
            "kind": "HostRefresh",
            "metadata": {"name": name, "labels": {TARGET_IMAGES_LABEL: release}},
            "spec": {"nodeName": node, "target": TARGET},
        },
    )
    # What the operator would have written (as admin: the operator's own rights are tested elsewhere).
    cp.kubectl(
        "patch",
        "hostrefresh",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": OPERATOR_STATUS}),
    )
    return name


@pytest.fixture(scope="module")
def scene(release: Release) -> Iterator[Scene]:
    cp = release.cp
    node_a, node_b = unique("chart-node-a"), unique("chart-node-b")
    for node in (node_a, node_b):
        _create(cp, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    unbound = cp.kubectl("create", "token", release.agent_sa, "-n", release.namespace).stdout.strip()
    yield Scene(
        release=release,
        node_a=node_a,
        node_b=node_b,
        refresh_a=_hostrefresh(cp, node_a, release.name),
        refresh_b=_hostrefresh(cp, node_b, release.name),
        agent_a=cp.token_kubeconfig(unique("agent-a"), _agent_pod_token(release, node_a)),
        agent_b=cp.token_kubeconfig(unique("agent-b"), _agent_pod_token(release, node_b)),
        unbound=cp.token_kubeconfig(unique("agent-unbound"), unbound),
    )


def _denied(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, f"expected a denial, got: {result.stdout}"
    assert "Forbidden" in result.stderr or "forbidden" in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


# -- the token -------------------------------------------------------------------------------------


def test_pod_bound_token_names_the_node(scene: Scene) -> None:
    review = json.loads(scene.as_agent(scene.agent_a, "auth", "whoami", "-o", "json").stdout)
    user = review["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{scene.release.namespace}:{scene.release.agent_sa}"
    assert user["extra"]["authentication.kubernetes.io/node-name"] == [scene.node_a]


# -- HostRefresh status ----------------------------------------------------------------------------


def test_agent_writes_status_agent_of_its_own_node(scene: Scene) -> None:
    agent = {"step": "Preflight", "stepState": "Running", "message": "checking the L0", "agentId": "a/gen0"}
    before = scene.refresh(scene.refresh_a)["status"]
    assert before.items() >= OPERATOR_STATUS.items()
    result = scene.patch_status(scene.agent_a, scene.refresh_a, {"agent": agent})
    assert result.returncode == 0, result.stderr
    status = scene.refresh(scene.refresh_a)["status"]
    assert status["agent"].items() >= agent.items()
    assert {k: v for k, v in status.items() if k != "agent"} == {k: v for k, v in before.items() if k != "agent"}
    # The other agent, on its own node, too: the policy is per token, not per account.
    result = scene.patch_status(scene.agent_b, scene.refresh_b, {"agent": {"step": "Preflight"}})
    assert result.returncode == 0, result.stderr


def test_agent_may_not_touch_another_nodes_refresh(scene: Scene) -> None:
    before = scene.refresh(scene.refresh_b)["status"]
    result = scene.patch_status(scene.agent_a, scene.refresh_b, {"agent": {"step": "Succeeded"}})
    _denied(
        result,
        scene.hostrefresh_policy,
        f"HostRefresh {scene.refresh_b} is for node {scene.node_b}",
        f"runs on node {scene.node_a}",
        "may only touch the HostRefresh of its own node",
    )
    assert scene.refresh(scene.refresh_b)["status"] == before


@pytest.mark.parametrize(
    ("status", "fields"),
    [
        ({"phase": "Succeeded"}, "status.phase"),
        ({"directive": "RollBack"}, "status.directive"),
        (
            {"phase": "Succeeded", "directive": "RollBack", "agent": {"step": "Succeeded"}},
            "status.directive, status.phase",
        ),
        (
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Done",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            },
            "status.conditions",
        ),
        ({"nestedSeconds": 12.5}, "status.nestedSeconds"),
        ({"addedTaints": None}, "status.addedTaints"),
    ],
)
def test_agent_may_not_write_operator_status_fields(scene: Scene, status: dict[str, Any], fields: str) -> None:
    before = scene.refresh(scene.refresh_a)["status"]
    result = scene.patch_status(scene.agent_a, scene.refresh_a, status)
    prefix = (
        f"may only write status.agent of HostRefresh {scene.refresh_a}; these status fields belong to the operator: "
    )
    _denied(result, scene.hostrefresh_policy, prefix)
    listed = result.stderr.split(prefix, 1)[1].strip()
    assert sorted(listed.split(", ")) == fields.split(", ")  # in map order, which is unspecified
    assert scene.refresh(scene.refresh_a)["status"] == before


def test_agent_may_not_remove_operator_status_fields(scene: Scene) -> None:
    result = scene.as_agent(
        scene.agent_a,
        "patch",
        "hostrefresh",
        scene.refresh_a,
        "--subresource=status",
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/status/startedAt"}]),
    )
    _denied(result, scene.hostrefresh_policy, "belong to the operator: status.startedAt")


def test_agent_may_not_change_spec(scene: Scene) -> None:
    spec_before = scene.refresh(scene.refresh_a)["spec"]
    # Through the object: RBAC gives the agent no write on HostRefresh objects at all.
    result = scene.as_agent(
        scene.agent_a, "patch", "hostrefresh", scene.refresh_a, "--type=merge", "-p", '{"spec":{"paused":true}}'
    )
    _denied(result, 'cannot patch resource "hostrefreshes"')
    # Through the status subresource: the API server drops everything but status.
    result = scene.patch_status(scene.agent_a, scene.refresh_a, {"agent": {"step": "Preflight"}})
    assert result.returncode == 0
    result = scene.as_agent(
        scene.agent_a,
        "patch",
        "hostrefresh",
        scene.refresh_a,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"spec":{"paused":true,"nodeName":"elsewhere"}}',
    )
    assert scene.refresh(scene.refresh_a)["spec"] == spec_before


def test_policy_denies_spec_writes_even_if_rbac_allowed_them(scene: Scene) -> None:
    """Defence in depth: grant the agent patch on HostRefresh objects; the policy still refuses."""
    cp, release = scene.cp, scene.release
    role = unique("too-generous")
    _create(
        cp,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [{"apiGroups": ["hostrefresh.io"], "resources": ["hostrefreshes"], "verbs": ["patch", "delete"]}],
        },
    )
    _create(
        cp,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": release.agent_sa, "namespace": release.namespace}],
        },
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # the RBAC authorizer sees the new binding through its informer, shortly
            result = scene.as_agent(
                scene.agent_a, "patch", "hostrefresh", scene.refresh_a, "--type=merge", "-p", '{"spec":{"paused":true}}'
            )
            if "cannot patch resource" not in result.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        _denied(
            result,
            scene.hostrefresh_policy,
            "may only patch status.agent through the status subresource",
            "UPDATE of the HostRefresh object is not allowed",
        )
        result = scene.as_agent(scene.agent_a, "delete", "hostrefresh", scene.refresh_a, "--wait=false")
        _denied(result, scene.hostrefresh_policy, "DELETE of the HostRefresh object is not allowed")
        assert scene.refresh(scene.refresh_a)["spec"]["paused"] is False
    finally:
        cp.kubectl("delete", "clusterrolebinding", role)
        cp.kubectl("delete", "clusterrole", role)


def test_token_without_node_claim_is_refused(scene: Scene) -> None:
    result = scene.patch_status(scene.unbound, scene.refresh_a, {"agent": {"step": "Preflight"}})
    _denied(result, scene.hostrefresh_policy, "this request carries no node name")


# -- heartbeat Leases ------------------------------------------------------------------------------


def _lease(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/component": "hostrefresh-agent", "hostrefresh.io/node": node},
        },
        "spec": {"holderIdentity": "agent", "leaseDurationSeconds": 30, "renewTime": now_rfc3339()},
    }


def test_agent_creates_and_renews_its_own_lease(scene: Scene) -> None:
    ns = scene.release.namespace
    name = f"hostrefresh-agent-{scene.node_a}"
    created = scene.as_agent(
        scene.agent_a, "create", "-n", ns, "-f", "-", stdin=manifest_json(_lease(name, scene.node_a))
    )
    assert created.returncode == 0, created.stderr
    lease = json.loads(scene.as_agent(scene.agent_a, "get", "lease", name, "-n", ns, "-o", "json").stdout)
    lease["spec"]["renewTime"] = now_rfc3339()
    renewed = scene.as_agent(scene.agent_a, "replace", "-n", ns, "-f", "-", stdin=json.dumps(lease))
    assert renewed.returncode == 0, renewed.stderr


def test_agent_may_not_write_another_nodes_lease(scene: Scene) -> None:
    ns = scene.release.namespace
    name = f"hostrefresh-agent-{scene.node_b}"
    result = scene.as_agent(
        scene.agent_a, "create", "-n", ns, "-f", "-", stdin=manifest_json(_lease(name, scene.node_b))
    )
    _denied(
        result,
        scene.lease_policy,
        f"the hostrefresh node agent on node {scene.node_a} may only write its own heartbeat Lease "
        f"hostrefresh-agent-{scene.node_a}, not Lease {name}",
    )
    # Nor the operator's leader Lease.
    result = scene.as_agent(
        scene.agent_a, "create", "-n", ns, "-f", "-", stdin=manifest_json(_lease("hostrefresh-operator", scene.node_a))
    )
    _denied(result, scene.lease_policy, "not Lease hostrefresh-operator")


def test_agent_may_not_label_its_lease_for_another_node(scene: Scene) -> None:
    """The operator reads the node from the label: a wrong one would fake another node's heartbeat."""
    ns = scene.release.namespace
    name = f"hostrefresh-agent-{scene.node_b}"
    created = scene.as_agent(
        scene.agent_b, "create", "-n", ns, "-f", "-", stdin=manifest_json(_lease(name, scene.node_b))
    )
    assert created.returncode == 0, created.stderr
    lease = json.loads(scene.as_agent(scene.agent_b, "get", "lease", name, "-n", ns, "-o", "json").stdout)
    lease["metadata"]["labels"]["hostrefresh.io/node"] = scene.node_a
    result = scene.as_agent(scene.agent_b, "replace", "-n", ns, "-f", "-", stdin=json.dumps(lease))
    _denied(result, scene.lease_policy, f"must carry the label hostrefresh.io/node={scene.node_b}")


def _long_lease(name: str, node: str) -> dict[str, Any]:
    lease = _lease(name, label_value(node))
    lease["metadata"]["annotations"] = {NODE_ANNOTATION: node}
    return lease


def test_long_node_names_get_leases_of_their_own(scene: Scene) -> None:
    """Two nodes whose 250-character names differ only at the end: each agent's Lease is its own."""
    cp, ns = scene.cp, scene.release.namespace
    common = unique("long-node") + "." + "p" * 220
    node_x, node_y = common + "-x", common + "-y"
    for node in (node_x, node_y):
        _create(cp, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    agent_x = cp.token_kubeconfig(unique("agent-x"), _agent_pod_token(scene.release, node_x))
    own, other = agent_lease_name(node_x), agent_lease_name(node_y)
    assert own != other
    created = scene.as_agent(agent_x, "create", "-n", ns, "-f", "-", stdin=manifest_json(_long_lease(own, node_x)))
    assert created.returncode == 0, created.stderr
    lease = json.loads(scene.as_agent(agent_x, "get", "lease", own, "-n", ns, "-o", "json").stdout)
    meta = lease["metadata"]
    assert heartbeat_node(own, ns, meta["labels"], ns, meta["annotations"]) == node_x
    # The other node's Lease, even under this node's annotation, is nobody's heartbeat to the operator.
    assert heartbeat_node(other, ns, {NODE_LABEL: label_value(node_x)}, ns, {NODE_ANNOTATION: node_x}) is None
    # A Lease of another shape is refused by admission.
    wrong = "hostrefresh-agent-" + node_x[:200]
    result = scene.as_agent(agent_x, "create", "-n", ns, "-f", "-", stdin=manifest_json(_long_lease(wrong, node_x)))
    _denied(result, scene.lease_policy, "sha256 of the node name")


def test_agent_may_not_delete_leases_or_use_an_unbound_token(scene: Scene) -> None:
    ns = scene.release.namespace
    result = scene.as_agent(scene.agent_b, "delete", "lease", f"hostrefresh-agent-{scene.node_b}", "-n", ns)
    _denied(result, 'cannot delete resource "leases"')
    name = unique("hostrefresh-agent-nobody")
    result = scene.as_agent(scene.unbound, "create", "-n", ns, "-f", "-", stdin=manifest_json(_lease(name, "nobody")))
    _denied(result, scene.lease_policy, "this request carries no node name")


def test_nobody_but_the_agent_writes_status_agent(scene: Scene) -> None:
    """Not even an administrator: a forged report ("Verifying done") would end the refresh as Succeeded."""
    before = scene.refresh(scene.refresh_a)["status"]
    forged = {"agent": {"step": "Verifying", "stepState": "Done", "updatedAt": "2099-01-01T00:00:00Z"}}
    result = scene.patch_status(scene.cp.kubeconfig, scene.refresh_a, forged)  # the administrator's kubeconfig
    _denied(
        result,
        f"ValidatingAdmissionPolicy '{scene.release.fullname}-agent-status'",
        f"status.agent of HostRefresh {scene.refresh_a} is written by the hostrefresh node agent only",
        "not by admin",
    )
    assert scene.refresh(scene.refresh_a)["status"] == before
    # The operator's own fields stay writable by others than the agent (here: the administrator).
    done = scene.patch_status(scene.cp.kubeconfig, scene.refresh_a, {"observedGeneration": 2})
    assert done.returncode == 0, done.stderr
