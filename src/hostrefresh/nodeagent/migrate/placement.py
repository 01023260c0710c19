"""Where the QEMU processes the agent starts live: in a cgroup of the host, not of the agent's pod.

Why: a container runtime stops a container by killing every process of its cgroup. An agent in a
pod that starts a QEMU there (the target of a handover, a VMM-only refresh's new QEMU) would see
the VM die with the pod: on an upgrade of the DaemonSet, an eviction, `kubectl delete pod`. A VM
belongs to the host, so each QEMU the agent starts joins the host's cgroup ``NAME`` (the agent's
``--vm-cgroup``) before its guest runs: in every cgroup v1 hierarchy, or in the unified one.

The host's cgroup tree is reached through PID 1's root (``/proc/1/root/sys/fs/cgroup``), which a
``hostPID`` pod sees. Where the agent's own cgroup namespace hides the target (cgroup v2 with a
private namespace), the write is made from PID 1's cgroup namespace (``nsenter --cgroup``).
"""

from __future__ import annotations

import errno
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

HOST_CGROUP_ROOT = Path("/proc/1/root/sys/fs/cgroup")


class PlacementError(RuntimeError):
    """A QEMU could not be moved into the host's cgroup (message: which hierarchy, why)."""


def valid_cgroup_name(name: str) -> bool:
    """One path component a cgroup may be named (no '/', no '..'): what --vm-cgroup accepts."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) is not None


@dataclass(frozen=True)
class HostCgroup:
    """The host cgroup ``name`` under ``root`` that adopts the agent's QEMU processes."""

    name: str
    root: Path = HOST_CGROUP_ROOT

    def __post_init__(self) -> None:
        if not valid_cgroup_name(self.name):
            raise ValueError(f"not one cgroup name: {self.name!r}")

    @property
    def unified(self) -> bool:
        """cgroup v2 alone (not a hybrid host's v1 hierarchies beside a unified one)."""
        return (self.root / "cgroup.controllers").exists()

    def hierarchies(self) -> list[Path]:
        """Roots to place a process in: the unified root (cgroup v2), else every v1 hierarchy (and the
        unified one a hybrid host mounts beside them). Symlinks (cpu -> cpu,cpuacct) count once."""
        if self.unified:
            return [self.root]
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and not entry.is_symlink() and (entry / "cgroup.procs").exists():
                found.append(entry)
        if not found:
            raise PlacementError(f"no cgroup hierarchy under {self.root}")
        return found

    def adopt(self, pid: int) -> list[Path]:
        """Move process `pid` (all its threads) into this cgroup in every hierarchy; returns the groups."""
        groups = []
        unified = self.unified
        for hierarchy in self.hierarchies():
            group = hierarchy / self.name
            try:
                group.mkdir(exist_ok=True)
                if not unified:  # on v2 an empty cpuset means "the parent's"
                    _inherit_cpuset(hierarchy, group)
                _write_procs(group / "cgroup.procs", pid)
            except OSError as exc:
                raise PlacementError(f"cannot move pid {pid} into {group}: {exc}") from exc
            groups.append(group)
        return groups


def _inherit_cpuset(parent: Path, group: Path) -> None:
    """A v1 cpuset group takes no task until it has CPUs and memory nodes: those of its parent."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        mine = group / name
        if mine.exists() and not mine.read_text().strip():
            mine.write_text((parent / name).read_text())


def _write_procs(procs: Path, pid: int) -> None:
    try:
        procs.write_text(f"{pid}\n")
    except OSError as exc:
        # cgroup v2 refuses (ENOENT) a target outside the writer's cgroup namespace: write from PID 1's.
        if exc.errno != errno.ENOENT or not procs.parent.exists():
            raise
        result = subprocess.run(
            ["nsenter", "--target", "1", "--cgroup", "--", "sh", "-c", 'echo "$1" > "$2"', "sh", str(pid), str(procs)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise OSError(exc.errno, f"{exc.strerror}; from PID 1's cgroup namespace: {result.stderr.strip()}") from exc
