"""The chart's target-images policy on the real API server: a HostRefresh or RefreshPlan may name a
kernel or initrd only in agent.imageDirs (default /var/lib/hostrefresh/images), whoever creates it.

The shared release's policy checks only objects labelled for it (see conftest), so every object here
carries that label.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.chart.conftest import TARGET_IMAGES_LABEL, Release
from tests.chart.helpers import manifest_json, unique

pytestmark = pytest.mark.integration

ALLOWED = "/var/lib/hostrefresh/images"
CHECKSUM = "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"


def _target(**overrides: str) -> dict[str, str]:
    return {"version": "6.12.4-kvm1", "kernel": f"{ALLOWED}/vmlinuz-6.12.4-kvm1", "checksum": CHECKSUM, **overrides}


def _refresh(release: Release, target: dict[str, Any], labelled: bool = True) -> dict[str, Any]:
    labels = {TARGET_IMAGES_LABEL: release.name} if labelled else {}
    return {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "metadata": {"name": unique("images"), "labels": labels},
        "spec": {"nodeName": unique("images-node"), "target": target},
    }


def _plan(release: Release, target: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "RefreshPlan",
        "metadata": {"name": unique("images-plan"), "labels": {TARGET_IMAGES_LABEL: release.name}},
        "spec": {"nodeSelector": {"matchLabels": {"pool": unique("p")}}, "target": target},
    }


def _create(release: Release, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return release.cp.kubectl("create", "-f", "-", stdin=manifest_json(obj), check=False)


def _denied(release: Release, result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, f"expected a denial, got: {result.stdout}"
    for fragment in (f"ValidatingAdmissionPolicy '{release.fullname}-target-images'", *fragments):
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


def test_a_kernel_in_the_allowed_directory_is_accepted(release: Release) -> None:
    for obj in (_refresh(release, _target(initrd=f"{ALLOWED}/initrd.img")), _plan(release, _target())):
        result = _create(release, obj)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "kernel",
    ["/dev/zero", "/etc/shadow", "/var/lib/hostrefresh/vmlinuz", "/var/lib/hostrefresh/images-other/vmlinuz", ALLOWED],
)
def test_a_kernel_elsewhere_is_refused_naming_the_field_and_the_directories(release: Release, kernel: str) -> None:
    obj = _refresh(release, _target(kernel=kernel))
    _denied(
        release,
        _create(release, obj),
        f"spec.target.kernel {kernel} is not in an allowed image directory ({ALLOWED})",
        "agent.imageDirs",
    )
    assert release.cp.kubectl("get", "hostrefresh", obj["metadata"]["name"], "--ignore-not-found").stdout == ""


def test_a_plan_and_an_initrd_are_held_to_it_too(release: Release) -> None:
    _denied(release, _create(release, _plan(release, _target(kernel="/boot/vmlinuz"))), "spec.target.kernel /boot")
    refresh = _refresh(release, _target(initrd="/tmp/initrd.img"))
    _denied(release, _create(release, refresh), "spec.target.initrd /tmp/initrd.img is not in an allowed image")


def test_changing_the_target_to_elsewhere_is_refused(release: Release) -> None:
    obj = _refresh(release, _target())
    assert _create(release, obj).returncode == 0
    patch = json.dumps({"spec": {"target": {"kernel": "/root/vmlinuz"}}})
    result = release.cp.kubectl(
        "patch", "hostrefresh", obj["metadata"]["name"], "--type=merge", "-p", patch, check=False
    )
    _denied(release, result, "spec.target.kernel /root/vmlinuz")


def test_an_object_whose_target_does_not_change_passes(release: Release) -> None:
    """An older object (from before the directories were narrowed) can still be labelled, finalized, deleted."""
    obj = _refresh(release, _target(kernel="/boot/vmlinuz"), labelled=False)  # not under the policy yet
    assert _create(release, obj).returncode == 0
    name = obj["metadata"]["name"]
    labelled = {"metadata": {"labels": {TARGET_IMAGES_LABEL: release.name}}}
    result = release.cp.kubectl("patch", "hostrefresh", name, "--type=merge", "-p", json.dumps(labelled), check=False)
    assert result.returncode == 0, result.stderr
    status = json.dumps({"status": {"phase": "Pending"}})
    result = release.cp.kubectl(
        "patch", "hostrefresh", name, "--subresource=status", "--type=merge", "-p", status, check=False
    )
    assert result.returncode == 0, result.stderr
    assert release.cp.kubectl("delete", "hostrefresh", name, check=False).returncode == 0


def _vmm(release: Release, binary: str) -> dict[str, Any]:
    obj = _refresh(release, {"version": "qemu-2", "qemu": {"binary": binary, "checksum": CHECKSUM}})
    obj["spec"]["scope"] = "VMM"
    return obj


def test_a_vmm_refresh_names_its_qemu_in_an_allowed_directory_too(release: Release) -> None:
    """A VMM-only refresh has no kernel: its QEMU binary is held to agent.imageDirs instead."""
    accepted = _create(release, _vmm(release, f"{ALLOWED}/qemu-2/bin/qemu-system-x86_64"))
    assert accepted.returncode == 0, accepted.stderr
    _denied(
        release,
        _create(release, _vmm(release, "/usr/bin/qemu-system-x86_64")),
        f"spec.target.qemu.binary /usr/bin/qemu-system-x86_64 is not in an allowed image directory ({ALLOWED})",
    )
    plan = _plan(release, {"version": "qemu-2", "qemu": {"binary": "/tmp/qemu", "checksum": CHECKSUM}})
    plan["spec"]["template"] = {"scope": "VMM"}
    _denied(release, _create(release, plan), "spec.target.qemu.binary /tmp/qemu")


@pytest.mark.parametrize("cmdline", ["init=/bin/sh", "console=ttyS0 lockdown=none", "module.sig_enforce=0"])
def test_a_kernel_parameter_outside_agent_kernel_params_is_refused(release: Release, cmdline: str) -> None:
    refused = " ".join(t for t in cmdline.split() if not t.startswith("console"))
    for obj in (_refresh(release, _target(cmdline=cmdline)), _plan(release, _target(cmdline=cmdline))):
        _denied(release, _create(release, obj), f"spec.target.cmdline: {refused} not allowed", "agent.kernelParams")


def test_allowed_kernel_parameters_are_accepted(release: Release) -> None:
    result = _create(release, _refresh(release, _target(cmdline="console=ttyS0  quiet root=/dev/vda ro")))
    assert result.returncode == 0, result.stderr
