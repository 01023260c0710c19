"""VM handover between the old L1 and the new L1: real QEMU local live migration.

The agent uses the `Migrator` protocol; `QemuMigrator` hands over real QEMU VMs (zero-copy with
x-ignore-shared when RAM is a shared file, copy migration otherwise). A simulator that fakes it at
scale (`hostrefresh.sim.migrator.SimMigrator`) implements the same protocol outside production code.
"""

from hostrefresh.nodeagent.migrate.accel import choose_accel, kvm_usable
from hostrefresh.nodeagent.migrate.base import Migrator, VmmSwitch
from hostrefresh.nodeagent.migrate.handover import HandoverError, HandoverHooks
from hostrefresh.nodeagent.migrate.inventory import Inventory, VmRecord
from hostrefresh.nodeagent.migrate.process import Instance, QemuStartError
from hostrefresh.nodeagent.migrate.qemu_migrator import QemuMigrator, failed
from hostrefresh.nodeagent.migrate.types import (
    HandoverPath,
    HandoverRecord,
    MigrationPolicy,
    Outcome,
    Role,
    VmLocation,
    VmmView,
    VmSpec,
)
from hostrefresh.nodeagent.migrate.vmm import LocalVmm


def _conforms(m: QemuMigrator) -> Migrator:
    """Static check (mypy) that the implementation satisfies the protocol."""
    return m


__all__ = [
    "HandoverError",
    "HandoverHooks",
    "HandoverPath",
    "HandoverRecord",
    "Instance",
    "Inventory",
    "LocalVmm",
    "MigrationPolicy",
    "Migrator",
    "Outcome",
    "QemuMigrator",
    "QemuStartError",
    "Role",
    "VmLocation",
    "VmRecord",
    "VmSpec",
    "VmmSwitch",
    "VmmView",
    "choose_accel",
    "failed",
    "kvm_usable",
]
