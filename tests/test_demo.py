"""`make demo` runs the main job: a simulated fleet refreshes itself on an embedded control plane."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.qemu, pytest.mark.slow]


def test_demo_fleet_refreshes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hostrefresh.demo", "--nodes", "4", "--zones", "2", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},  # rich wraps at the terminal width
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "4 nodes refreshed" in result.stdout
    # 3 simulated nodes with 3 simulated VMs each, 1 node with 2 real guests in two real hosts.
    assert "11 VMs handed over on their own machines (11 zero-copy)" in result.stdout
    for vm in ("worker-00-vm0", "worker-00-vm1"):
        assert f"verified: {vm}: runs in host L1 2 of worker-00" in result.stdout, result.stdout[-3000:]
    assert (tmp_path / "rollout-timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "no timeline picture"
    assert f"timeline: {tmp_path / 'rollout-timeline.png'}" in result.stdout
    assert not (tmp_path / "controlplane" / "controlplane.json").exists()  # stopped cleanly


def test_demo_fleet_refreshes_qemu_only(tmp_path: Path) -> None:
    """``--scope vmm``: the real guests move from an older QEMU build to the installed one, never nested."""
    argv = [sys.executable, "-m", "hostrefresh.demo", "--nodes", "3", "--zones", "2", "--scope", "vmm"]
    result = subprocess.run(
        [*argv, "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "refreshing QEMU only (VMM refresh, never nested)" in result.stdout
    assert "3 nodes refreshed" in result.stdout
    assert "8 VMs handed over on their own machines (8 zero-copy)" in result.stdout
    assert "at most 0.00s nested per node" in result.stdout
    for vm in ("worker-00-vm0", "worker-00-vm1"):
        assert f"verified: {vm}: runs in host L1 1 of worker-00" in result.stdout, result.stdout[-3000:]
