"""VM handover between the old L1 and the new L1: real QEMU local live migration, or a simulator.

The agent uses the `Migrator` protocol; `QemuMigrator` hands over real QEMU VMs (zero-copy with
x-ignore-shared when RAM is a shared file, copy migration otherwise), `SimMigrator` fakes it at scale.
"""

from hostrefresh.nodeagent.migrate.accel import choose_accel, kvm_usable
from hostrefresh.nodeagent.migrate.base import Migrator, VmmSwitch
from hostrefresh.nodeagent.migrate.handover import HandoverError, HandoverHooks
from hostrefresh.nodeagent.migrate.inventory import Inventory, VmRecord
from hostrefresh.nodeagent.migrate.process import Instance, QemuStartError
from hostrefresh.nodeagent.migrate.qemu_migrator import QemuMigrator, failed
from hostrefresh.nodeagent.migrate.sim import SimBehaviour, SimMigrator, SimVm
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


def _conforms(m: QemuMigrator | SimMigrator) -> Migrator:
    """Static check (mypy) that both implementations satisfy the protocol."""
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
    "SimBehaviour",
    "SimMigrator",
    "SimVm",
    "VmLocation",
    "VmRecord",
    "VmSpec",
    "VmmSwitch",
    "VmmView",
    "choose_accel",
    "failed",
    "kvm_usable",
]
