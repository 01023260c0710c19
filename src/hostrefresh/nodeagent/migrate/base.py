"""The interface the agent programs against; implemented by the QEMU migrator and the simulator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hostrefresh.nodeagent.migrate.types import HandoverRecord, MigrationPolicy, VmLocation, VmmView


class VmmSwitch(Protocol):
    """A node's VMs handed to QEMUs of another build on the same host (a VMM-only refresh).

    Idempotent from observed state like the ``Migrator``; ``names=None`` means every VM.
    """

    async def view(self) -> VmmView:
        """Where each VM runs and which binary runs it, observed."""
        ...

    async def refusals(self, binary: str) -> list[str]:
        """Why ``binary`` cannot receive some VM (empty when it can receive every one), before anything moves."""
        ...

    async def swap(self, binary: str, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        """Hand each VM not yet on ``binary`` to a new instance of it; a VM that fails keeps its QEMU."""
        ...

    async def restore(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        """Rollback: every VM back on an instance of the binary it ran before."""
        ...

    async def commit(self) -> None:
        """The refresh is verified: the new binary becomes each VM's own."""
        ...


class Migrator(Protocol):
    """Node-local VM handover between the old L1 ("source") and the new L1 ("target").

    Every method is idempotent and works from observed state: call it again after a crash and it
    finishes or reports what it finds. `names=None` means every VM in the node's inventory.
    """

    policy: MigrationPolicy
    """How the next handovers run; the agent sets it from the HostRefresh's spec.handover."""

    async def locate(self) -> dict[str, VmLocation]:
        """Where each VM runs right now (observed, not remembered)."""
        ...

    async def prepare_targets(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Start target instances waiting for their stream (before the nested window); ms per VM."""
        ...

    async def hand_over(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        """Move VMs to the target; a VM that fails keeps running on the source."""
        ...

    async def hand_back(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        """Rollback: move VMs that are on the target back to the source."""
        ...

    async def commit(self) -> None:
        """After the old L1 retired: the target generation becomes the next refresh's source."""
        ...

    async def footprint(self) -> int:
        """Bytes of guest RAM of the VMs this host runs: what the old host must keep while they wait."""
        ...

    async def tidy(self) -> None:
        """After a rollback stopped the new L1: forget what is left of handovers of VMs that are home
        (offers of a refresh that rolled back before they were sent); never a record of a lost VM."""
        ...

    def vmm(self) -> VmmSwitch:
        """The VMM-only refresh of the same VMs, on this host."""
        ...
