"""The local control plane is real: RBAC enforced, admission on, clean start and stop."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostrefresh.controlplane import ControlPlane, ensure_tools
from hostrefresh.controlplane.__main__ import main
from hostrefresh.controlplane.tools import cache_key, toolset
from hostrefresh.controlplane.versions import ETCD, HELM, KUBERNETES

pytestmark = pytest.mark.integration


def test_tools_are_cached_per_version() -> None:
    tools = ensure_tools()
    assert tools == toolset()
    key = cache_key()
    assert KUBERNETES in key and ETCD in key and HELM in key
    started = time.monotonic()
    ensure_tools()  # warm: no build
    assert time.monotonic() - started < 5


def test_versions_are_the_pinned_ones(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == KUBERNETES
    assert version["clientVersion"]["gitVersion"] == KUBERNETES


def test_rbac_denies_an_unprivileged_user(control_plane: ControlPlane) -> None:
    nobody = control_plane.user_kubeconfig("nobody")
    result = control_plane.kubectl("get", "nodes", kubeconfig=nobody, check=False)
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()
    allowed = control_plane.kubectl("auth", "can-i", "list", "nodes", "--as=nobody", check=False)
    assert allowed.stdout.strip() == "no"


def test_validating_admission_policy_is_enforced(control_plane: ControlPlane) -> None:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "cm-needs-label"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [{"expression": "has(object.metadata.labels)", "message": "label it"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "cm-needs-label"},
        "spec": {
            "policyName": "cm-needs-label",
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"vap-test": "yes"}}},
        },
    }
    control_plane.kubectl("create", "namespace", "vap-test")
    control_plane.kubectl("label", "namespace", "vap-test", "vap-test=yes")
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(policy))
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(binding))
    deadline = time.monotonic() + 30
    result = None
    while time.monotonic() < deadline:  # policies take effect after the informer syncs
        result = control_plane.kubectl("-n", "vap-test", "create", "configmap", "x", check=False)
        if result.returncode != 0:
            break
        control_plane.kubectl("-n", "vap-test", "delete", "configmap", "x")
        time.sleep(0.5)
    assert result is not None and result.returncode != 0 and "label it" in result.stderr
    control_plane.kubectl("delete", "validatingadmissionpolicybinding", "cm-needs-label")
    control_plane.kubectl("delete", "validatingadmissionpolicy", "cm-needs-label")


def test_a_second_control_plane_starts_fast_and_stops_clean(tmp_path: Path) -> None:
    started = time.monotonic()
    cp = ControlPlane(tmp_path / "cp2")
    cp.start()
    startup = time.monotonic() - started
    state = json.loads((cp.workdir / "controlplane.json").read_text())
    pids = list(state["pids"].values())
    assert cp.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    cp.stop()
    assert startup < 30, f"warm startup took {startup:.1f}s"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"process {pid} survived stop()"
    assert not (cp.workdir / "controlplane.json").exists()


def test_detached_up_and_down(tmp_path: Path) -> None:
    workdir = tmp_path / "detached"
    assert main(["up", "--dir", str(workdir)]) == 0
    state = json.loads((workdir / "controlplane.json").read_text())
    assert all(Path(f"/proc/{pid}").exists() for pid in state["pids"].values())
    assert main(["down", "--dir", str(workdir)]) == 0
    for pid in state["pids"].values():
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert main(["down", "--dir", str(workdir)]) == 1


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_killed_owner_takes_its_control_plane_with_it(tmp_path: Path) -> None:
    """SIGKILL the process that started a control plane: etcd and kube-apiserver must not survive it."""
    code = (
        "import sys, time; from pathlib import Path; from hostrefresh.controlplane import ControlPlane;"
        f"cp = ControlPlane(Path({str(tmp_path / 'owned')!r})); cp.start(); print('up', flush=True); time.sleep(600)"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "up"
        pids = list(json.loads((tmp_path / "owned" / "controlplane.json").read_text())["pids"].values())
        assert all(Path(f"/proc/{pid}").exists() for pid in pids)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() and not _is_zombie(p) for p in pids):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{p}").exists() and not _is_zombie(p) for p in pids), "control plane outlived its owner"
