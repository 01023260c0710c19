"""A started refresh keeps the spec it started with: the API server refuses edits that would strand the node."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from hostrefresh.controlplane import ControlPlane

pytestmark = pytest.mark.integration

CHECKSUM = "sha256:" + "ab" * 32


def _refresh(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "node-a",
            "target": {"version": "2.0", "kernel": "/var/lib/hostrefresh/images/vmlinuz-2.0", "checksum": CHECKSUM},
        },
    }


def _patch(cp: ControlPlane, name: str, body: dict[str, Any], status: bool = False) -> subprocess.CompletedProcess[str]:
    args = ["patch", "hostrefresh", name, "--type=merge", "-p", json.dumps(body)]
    if status:
        args.append("--subresource=status")
    return cp.kubectl(*args, check=False)


# (field, an edit before the start, another edit once it runs)
EDITS = [
    ("target", {"spec": {"target": {"version": "3.0"}}}, {"spec": {"target": {"version": "4.0"}}}),
    ("partition", {"spec": {"partition": {"cpus": 4}}}, {"spec": {"partition": {"cpus": 3}}}),
    ("handover", {"spec": {"handover": {"maxParallel": 1}}}, {"spec": {"handover": {"maxParallel": 2}}}),
    (
        "scope",
        {
            "spec": {
                "scope": "VMM",
                "target": {"qemu": {"binary": "/var/lib/hostrefresh/images/qemu", "checksum": CHECKSUM}},
            }
        },
        {"spec": {"scope": "Host"}},
    ),
]


@pytest.mark.parametrize(("field", "early", "edit"), EDITS, ids=[e[0] for e in EDITS])
def test_a_running_refresh_refuses_spec_edits_that_would_strand_the_node(
    crds: ControlPlane, field: str, early: dict[str, Any], edit: dict[str, Any]
) -> None:
    name = f"frozen-{field}"
    crds.kubectl("apply", "-f", "-", stdin=json.dumps(_refresh(name)))
    try:
        assert _patch(crds, name, early).returncode == 0, "a refresh that has not started may change"
        assert (
            _patch(crds, name, {"status": {"directive": "Proceed", "phase": "Migrating"}}, status=True).returncode == 0
        )
        refused = _patch(crds, name, edit)
        assert refused.returncode != 0
        assert f"spec.{field}" in refused.stderr and "spec.abort" in refused.stderr, refused.stderr
        assert _patch(crds, name, {"spec": {"paused": True}}).returncode == 0, "pause stays possible"
        assert _patch(crds, name, {"spec": {"abort": True}}).returncode == 0, "abort stays possible"
        assert _patch(crds, name, {"status": {"phase": "RolledBack"}}, status=True).returncode == 0
        assert _patch(crds, name, edit).returncode == 0, "a finished refresh may change again"
    finally:
        crds.kubectl("delete", "hostrefresh", name, "--ignore-not-found")
