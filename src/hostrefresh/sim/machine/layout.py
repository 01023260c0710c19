"""Where a simulated machine keeps each thing, and which of them its two hosts share.

Shared between the hosts of a node (what the L0 provides across partitions):
``l0.state`` the simulated L0; ``ram/`` the guest-RAM files (a memory grant maps them into the new
host); ``channel/`` the inter-partition handover channel; ``handoff/`` the L0's handoff area.
Private to each host: ``hosts/l1-<id>/`` (its sysfs view, its run directory with the QEMU sockets and
VM records, its agent's log), seen from inside the host at ``host/`` while ``hosts/`` is hidden.
The fault campaign's own: ``failpoints/l1-<id>/`` the failpoints armed for that host's agent (kept
outside ``hosts/`` so that they can be armed before the host exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NodeLayout:
    """The directories of one simulated machine (one node)."""

    base: Path

    @property
    def node(self) -> str:
        return self.base.name

    @property
    def l0_state(self) -> Path:
        return self.base / "l0.state"

    @property
    def ram(self) -> Path:
        return self.base / "ram"

    @property
    def channel(self) -> Path:
        return self.base / "channel"

    @property
    def handoff(self) -> Path:
        return self.base / "handoff"

    @property
    def hosts(self) -> Path:
        return self.base / "hosts"

    @property
    def inside(self) -> Path:
        """A host's own directory as the host sees it (a bind mount in its mount namespace)."""
        return self.base / "host"

    def host(self, l1: int) -> Path:
        """A host's own directory as the machine (and a test) sees it from outside."""
        return self.hosts / f"l1-{l1}"

    def failpoints(self, l1: int) -> Path:
        """The failpoints directory of host ``l1``'s agent (``hostrefresh.failpoints``)."""
        return self.base / "failpoints" / f"l1-{l1}"

    def sysfs(self, l1: int) -> Path:
        return self.host(l1) / "sysfs"

    def run(self, l1: int) -> Path:
        """The host's VM runtime (VM records, QEMU sockets and logs), seen from outside."""
        return self.host(l1) / "vms"

    def outside(self, path: str | Path, l1: int) -> Path:
        """A path a host recorded (under ``host/``) as seen from outside the host."""
        p = Path(path)
        try:
            return self.host(l1) / p.relative_to(self.inside)
        except ValueError:
            return p
