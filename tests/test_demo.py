"""`make demo` runs the main job: a simulated fleet refreshes itself on an embedded control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostrefresh.demo import _stalled

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


def _started_by(workdir: Path) -> list[str]:
    """Command lines of the running processes that name ``workdir`` (all the demo starts does)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_demo_stops_everything_it_started(tmp_path: Path, signum: int) -> None:
    """Ctrl-C or SIGTERM mid-rollout: the demo ends within seconds and leaves nothing running (the
    control plane, the operator, the agents)."""
    # Six simulated nodes one at a time, each with a 1 s boot and a 2 s soak: a rollout of half a minute
    # at least, so the signal lands in it, never after it (a finished demo ends 0 on its own).
    argv = [sys.executable, "-m", "hostrefresh.demo", "--nodes", "6", "--max-unavailable", "1", "--real-nodes", "0"]
    argv += ["--workdir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "agent.log").exists() or not _started_by(tmp_path)[2:]:
            assert proc.poll() is None and time.monotonic() < deadline, "the demo did not get under way"
            time.sleep(0.5)
        time.sleep(2)  # under way: the plan is applied, the operator and the agents run
        assert len(_started_by(tmp_path)) >= 4, _started_by(tmp_path)  # etcd, apiserver, operator, agent (+ demo)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "everything the demo started has stopped" in err
    assert _started_by(tmp_path) == []
    assert not (tmp_path / "controlplane" / "controlplane.json").exists()


def test_a_stalled_plan_is_named() -> None:
    stalled = {
        "conditions": [
            {
                "type": "Stalled",
                "status": "True",
                "reason": "FailureThresholdReached",
                "message": "1 refresh(es) failed",
            }
        ]
    }
    assert _stalled(stalled) == "FailureThresholdReached: 1 refresh(es) failed"
    assert _stalled({"conditions": [{"type": "Stalled", "status": "False", "reason": "AsExpected"}]}) is None
