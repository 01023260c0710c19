"""The kubectl plugin against the real control plane, invoked through the real kubectl."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hostrefresh.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def _plugin(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    """``kubectl hostrefresh ...``: kubectl finds ``kubectl-hostrefresh`` on PATH (plugins take no kubectl flags)."""
    plugin_dir = Path(shutil.which("kubectl-hostrefresh") or "kubectl-hostrefresh").parent
    env = {
        **os.environ,
        "PATH": f"{plugin_dir}:{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(cp.kubeconfig),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [str(cp.tools.kubectl), "hostrefresh", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_start_list_pause_abort(crds: ControlPlane) -> None:
    out = _plugin(
        crds,
        "start",
        "cli-node",
        "--version",
        "7.1",
        "--kernel",
        "/boot/vmlinuz-7.1",
        "--memory",
        "2Gi",
        "--name",
        "cli-hr",
    )
    assert out.returncode == 0, out.stderr
    assert "hostrefresh cli-hr created for node cli-node" in out.stdout
    listing = _plugin(crds, "list").stdout
    assert "cli-hr" in listing and "cli-node" in listing and "7.1" in listing
    assert _plugin(crds, "pause", "hostrefresh", "cli-hr").returncode == 0
    assert crds.kubectl("get", "hrf", "cli-hr", "-o", "jsonpath={.spec.paused}").stdout == "true"
    assert _plugin(crds, "abort", "hostrefresh", "cli-hr").returncode == 0
    assert crds.kubectl("get", "hrf", "cli-hr", "-o", "jsonpath={.spec.abort}").stdout == "true"
    crds.kubectl("delete", "hrf", "cli-hr")


def test_bad_input_names_the_field_and_changes_nothing(crds: ControlPlane) -> None:
    out = _plugin(crds, "start", "cli-bad", "--version", "1", "--kernel", "/k", "--cpus", "0", "--name", "cli-bad")
    assert out.returncode == 2
    assert "invalid refresh" in out.stdout and "cpus" in out.stdout
    assert crds.kubectl("get", "hrf", "cli-bad", "--ignore-not-found", "-o", "name").stdout == ""
    missing = _plugin(crds, "pause", "hostrefresh", "does-not-exist")
    assert missing.returncode == 1 and "not found" in missing.stdout
