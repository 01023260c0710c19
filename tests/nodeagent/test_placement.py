"""QEMUs the agent starts join a host cgroup, so that they outlive the agent's pod (placement.py)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostrefresh.nodeagent.migrate.placement import HostCgroup, PlacementError


def _v1_tree(root: Path) -> None:
    for name in ("cpu", "cpuset", "memory"):
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    # What the kernel creates in a new cpuset group: empty cpus and mems.
    (root / "cpuset" / "vms").mkdir()
    (root / "cpuset" / "vms" / "cpuset.cpus").write_text("")
    (root / "cpuset" / "vms" / "cpuset.mems").write_text("")
    (root / "cpu,cpuacct").symlink_to(root / "cpu")


def test_cgroup_v2_uses_the_unified_root(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    groups = HostCgroup("vms", tmp_path).adopt(4242)
    assert groups == [tmp_path / "vms"]
    assert (tmp_path / "vms" / "cgroup.procs").read_text() == "4242\n"


def test_cgroup_v2_leaves_an_empty_cpuset_alone(tmp_path: Path) -> None:
    """v2: the root has no cpuset files, a child has empty ones, which mean "the parent's"."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu memory\n")
    (tmp_path / "vms").mkdir()
    (tmp_path / "vms" / "cpuset.cpus").write_text("")
    HostCgroup("vms", tmp_path).adopt(9)
    assert (tmp_path / "vms" / "cpuset.cpus").read_text() == ""
    assert (tmp_path / "vms" / "cgroup.procs").read_text() == "9\n"


def test_only_one_cgroup_name(tmp_path: Path) -> None:
    for bad in ("", "..", "../up", "a/b", "-x"):
        with pytest.raises(ValueError, match="not one cgroup name"):
            HostCgroup(bad, tmp_path)


def test_cgroup_v1_every_hierarchy_once_and_cpuset_inherits(tmp_path: Path) -> None:
    _v1_tree(tmp_path)
    groups = HostCgroup("vms", tmp_path).adopt(77)
    assert sorted(g.parent.name for g in groups) == ["cpu", "cpuset", "memory"]  # the symlink counts once
    for group in groups:
        assert (group / "cgroup.procs").read_text() == "77\n"
    assert (tmp_path / "cpuset" / "vms" / "cpuset.cpus").read_text() == "0-1\n"
    assert (tmp_path / "cpuset" / "vms" / "cpuset.mems").read_text() == "0\n"


def test_no_hierarchy_and_failed_writes_are_errors(tmp_path: Path) -> None:
    with pytest.raises(PlacementError, match="no cgroup hierarchy"):
        HostCgroup("vms", tmp_path).adopt(1)
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "cgroup.procs").write_text("")
    (tmp_path / "memory" / "vms").mkdir()
    (tmp_path / "memory" / "vms" / "cgroup.procs").mkdir()  # not writable as a file
    with pytest.raises(PlacementError, match=r"cannot move pid 5 into .*memory/vms"):
        HostCgroup("vms", tmp_path).adopt(5)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def test_real_cgroups_move_a_process_out_of_ours(sleeper: subprocess.Popen[bytes]) -> None:
    """On this machine's own cgroup tree (root, as CI runs): the process leaves our cgroups."""
    name = f"hostrefresh-test-{secrets.token_hex(3)}"
    placement = HostCgroup(name, Path("/sys/fs/cgroup"))
    ours = Path(f"/proc/{os.getpid()}/cgroup").read_text()
    try:
        groups = placement.adopt(sleeper.pid)
        theirs = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        assert theirs != ours
        assert all(line.endswith(f"/{name}") for line in theirs.splitlines() if line), theirs
        assert groups
    finally:
        sleeper.kill()
        sleeper.wait()
        for hierarchy in placement.hierarchies():
            if (hierarchy / name).exists():
                (hierarchy / name).rmdir()
