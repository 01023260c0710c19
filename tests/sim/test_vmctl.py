"""`python -m hostrefresh.sim.guest.vmctl`: test guests started and checked from a shell, as the
kind e2e does in the agent's pod, and the simulated node a kind worker gets (`python -m hostrefresh.sim.node`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hostrefresh.l0 import open_l0
from hostrefresh.sim.guest.build import guest_image
from hostrefresh.sim.guest.lab import kill_processes_mentioning


def _vmctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hostrefresh.sim.guest.vmctl", *args], capture_output=True, text=True, timeout=120
    )


def test_bad_arguments_name_the_flag(tmp_path: Path) -> None:
    missing = _vmctl(
        f"--vm-runtime={tmp_path}", "launch", "vm", f"--image={tmp_path / 'none'}", f"--ram-dir={tmp_path}"
    )
    assert missing.returncode == 2 and "--image" in missing.stderr and "copy the test guest" in missing.stderr
    image = tmp_path / "img"
    image.write_bytes(b"x")
    big = _vmctl(
        f"--vm-runtime={tmp_path}", "launch", "vm", f"--image={image}", f"--ram-dir={tmp_path}", "--memory-mib=8"
    )
    assert big.returncode == 2 and "--memory-mib must be 16-4096" in big.stderr
    escape = _vmctl(
        f"--vm-runtime={tmp_path}", "launch", "vm", f"--image={image}", f"--ram-dir={tmp_path}", "--vm-cgroup=../x"
    )
    assert escape.returncode == 2 and "--vm-cgroup must be one cgroup name" in escape.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.qemu
@pytest.mark.slow
def test_launch_then_verify_a_guest(tmp_path: Path) -> None:
    runtime = Path("/tmp") / f"hrvc-{tmp_path.name[-8:]}"  # short: unix socket paths
    try:
        launched = _vmctl(
            f"--vm-runtime={runtime}", "launch", "g1", f"--image={guest_image()}", f"--ram-dir={tmp_path / 'ram'}"
        )
        assert launched.returncode == 0, launched.stderr
        pid = json.loads(launched.stdout)["g1"]["pid"]
        assert json.loads(launched.stdout)["g1"]["passes"] >= 1  # back once the guest wrote its pattern
        again = _vmctl(
            f"--vm-runtime={runtime}", "launch", "g1", f"--image={guest_image()}", f"--ram-dir={tmp_path / 'ram'}"
        )
        assert json.loads(again.stdout)["g1"]["pid"] == pid  # a running guest is left alone
        verified = _vmctl(f"--vm-runtime={runtime}", "verify", "g1")
        assert verified.returncode == 0, verified.stdout
        report = json.loads(verified.stdout)["g1"]
        assert report["ok"] and report["advancing"] and report["pagesChecked"] > 0 and report["pid"] == pid
        unknown = _vmctl(f"--vm-runtime={runtime}", "verify", "nope")
        assert unknown.returncode == 1 and not json.loads(unknown.stdout)["nope"]["ok"]
    finally:
        kill_processes_mentioning(str(runtime))
        subprocess.run(["rm", "-rf", str(runtime)], check=False)


def test_sim_node_cli_powers_on_a_simulated_node(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hostrefresh.sim.node", str(tmp_path), "w1", "--cpus=4"],
        capture_output=True,
        text=True,
        check=True,
    )
    base = Path(out.stdout.strip())
    assert base == tmp_path / "w1" and (base / "sysfs").is_dir()
    with open_l0("sim", base / "l0.state") as l0:
        state = l0.query()
    assert len(state.running_l1s) == 1 and not state.nested
    bad = subprocess.run(
        [sys.executable, "-m", "hostrefresh.sim.node", str(tmp_path), "w2", "--cpus=1"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--cpus" in bad.stderr and not (tmp_path / "w2").exists()
