"""`helm install` into the real control plane: the objects exist and the API server accepts them all.

No kubelet runs, so the operator and agent pods never start; what is checked is what the API server
stores (RBAC, admission policies, workloads).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chart.conftest import Release
from tests.chart.helpers import helm

pytestmark = pytest.mark.integration


def _names(release: Release, *args: str) -> set[str]:
    out = release.cp.kubectl("get", *args, "-o", "json").stdout
    return {item["metadata"]["name"] for item in json.loads(out)["items"]}


def test_release_is_deployed(release: Release, helm_home: Path) -> None:
    out = helm(
        "status",
        release.name,
        "-n",
        release.namespace,
        "--kubeconfig",
        str(release.cp.kubeconfig),
        "-o",
        "json",
        home=helm_home,
    ).stdout
    assert json.loads(out)["info"]["status"] == "deployed"


def test_namespaced_objects_exist(release: Release) -> None:
    ns = ("-n", release.namespace)
    fn = release.fullname
    assert _names(release, "deployments", *ns) == {f"{fn}-operator"}
    assert _names(release, "daemonsets", *ns) == {f"{fn}-agent"}
    assert _names(release, "poddisruptionbudgets", *ns) == {f"{fn}-operator"}
    assert {f"{fn}-operator", f"{fn}-agent"} <= _names(release, "serviceaccounts", *ns)
    assert _names(release, "roles", *ns) == {f"{fn}-operator", f"{fn}-agent"}
    assert _names(release, "rolebindings", *ns) == {f"{fn}-operator", f"{fn}-agent"}
    assert _names(release, "services", *ns) == {f"{fn}-operator-metrics", f"{fn}-agent-metrics"}


def test_notes_say_what_to_do_next(release: Release, helm_home: Path) -> None:
    kube = ["-n", release.namespace, "--kubeconfig", str(release.cp.kubeconfig)]
    notes = helm("get", "notes", release.name, *kube, home=helm_home).stdout
    assert f"kubectl label namespace {release.namespace} pod-security.kubernetes.io/enforce=privileged" in notes
    assert "kubectl label node NODE hostrefresh.io/hypervisor=true" in notes
    assert "kubernetes.io/arch=amd64" in notes and "kubectl hostrefresh get" in notes


def test_cluster_objects_exist(release: Release) -> None:
    fn = release.fullname
    assert {f"{fn}-operator", f"{fn}-agent"} <= _names(release, "clusterroles")
    assert {f"{fn}-operator", f"{fn}-agent"} <= _names(release, "clusterrolebindings")
    policies = {f"{fn}-agent-hostrefresh", f"{fn}-agent-lease", f"{fn}-target-images"}
    assert policies <= _names(release, "validatingadmissionpolicies")
    assert policies <= _names(release, "validatingadmissionpolicybindings")
    assert {"hostrefreshes.hostrefresh.io", "refreshplans.hostrefresh.io"} <= _names(release, "crds")


def test_rbac_as_the_api_server_sees_it(release: Release) -> None:
    """`kubectl auth can-i` as each service account: the grants and the absence of everything else."""
    ns = release.namespace

    def can(sa: str, *args: str) -> bool:
        result = release.cp.kubectl("auth", "can-i", *args, f"--as=system:serviceaccount:{ns}:{sa}", check=False)
        return result.stdout.strip() == "yes"

    agent, operator = release.agent_sa, release.operator_sa
    assert can(agent, "patch", "hostrefreshes.hostrefresh.io", "--subresource=status")
    assert can(agent, "watch", "hostrefreshes.hostrefresh.io")
    assert can(agent, "create", "leases", "-n", ns)
    assert not can(agent, "patch", "hostrefreshes.hostrefresh.io")
    assert not can(agent, "delete", "leases", "-n", ns)
    assert not can(agent, "create", "leases", "-n", "default")
    assert not can(agent, "get", "secrets", "-n", ns)
    assert not can(agent, "patch", "nodes")
    assert can(operator, "patch", "nodes")
    assert can(operator, "update", "leases/hostrefresh-operator", "-n", ns)
    assert not can(operator, "update", "leases/something-else", "-n", ns)
    assert not can(operator, "delete", "nodes")
    assert not can(operator, "get", "secrets", "-n", ns)
    assert can(operator, "patch", "hostrefreshes.hostrefresh.io", "--subresource=status")
