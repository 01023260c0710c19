"""Value types of the migrator: what a VM is, how to hand it over, and what happened."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal

Role = Literal["source", "target"]
"""Which L1 generation owns a QEMU instance: the old L1 ("source") or the new L1 ("target")."""

ROLES: tuple[Role, Role] = ("source", "target")


def other(role: Role) -> Role:
    return "target" if role == "source" else "source"


class HandoverPath(StrEnum):
    """How guest RAM crossed over."""

    ZERO_COPY = "zero-copy"  # shared file-backed RAM + x-ignore-shared: only device state is sent
    COPY = "copy"  # classic precopy of all RAM through the migration stream
    NONE = "none"  # nothing moved (already there, or failed before migrating)


class Outcome(StrEnum):
    MOVED = "moved"  # migrated now (possibly finishing a migration a crashed agent started)
    ALREADY = "already"  # observed already on the destination; nothing to do (idempotent rerun)
    FAILED = "failed"  # not moved; the VM runs on the side it came from
    LOST = "lost"  # neither side runs the VM (needs an operator); never caused by a clean failure


class VmLocation(StrEnum):
    """Observed placement of a VM."""

    SOURCE = "source"
    TARGET = "target"
    MIGRATING = "migrating"
    LOST = "lost"


@dataclass(frozen=True)
class VmSpec:
    """A VM's QEMU configuration; source and target instances are started from the same spec."""

    name: str
    memory_mib: int
    kernel: str
    append: str = ""
    vcpus: int = 1
    mem_path: str | None = None  # file for shared file-backed RAM (zero-copy capable); None = anonymous
    accel: str = "kvm"
    machine: str = "microvm"
    # The VMM binary this VM's QEMU runs ("": the agent's default, $HOSTREFRESH_QEMU or the one on
    # PATH). A VMM-only refresh moves the VM to an instance of another binary on the same host.
    qemu: str = ""

    @property
    def shared_memory(self) -> bool:
        return self.mem_path is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.qemu:  # as before the field existed: an agent of that time reads the record too
            del data["qemu"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VmSpec:
        """The spec in ``data``; keys this version does not know (a newer agent's) are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class MigrationPolicy:
    """Knobs of a handover run (from the HostRefresh handover policy)."""

    zero_copy: bool = True  # use x-ignore-shared when RAM is shared; False forces copy
    copy_fallback: bool = True  # allow copy migration for VMs without shared RAM
    max_bandwidth: int = 64 << 30  # bytes/s; QEMU's default (32 MiB/s) never converges locally
    downtime_limit_ms: int = 300
    timeout_s: float = 300.0  # per VM; then migrate_cancel and the VM stays on its source
    parallel: int = 4  # VMs migrating at once
    poll_interval_s: float = 0.002


@dataclass
class HandoverRecord:
    """Per-VM result of one hand_over / hand_back call (QMP figures where QEMU gives them)."""

    name: str
    direction: Role  # the role the VM was moved to
    outcome: Outcome
    path: HandoverPath = HandoverPath.NONE
    downtime_ms: float | None = None
    total_ms: float | None = None
    setup_ms: float | None = None
    bytes_transferred: int | None = None
    target_start_ms: float | None = None
    wall_ms: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.MOVED, Outcome.ALREADY)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = str(self.outcome)
        data["path"] = str(self.path)
        return data


@dataclass(frozen=True)
class VmmView:
    """One look at a node's VMs for a VMM-only refresh (see vmm.py)."""

    vms: dict[str, VmLocation]  # where each runs: its own instance (source), the new one (target), ...
    binaries: dict[str, str]  # real path of the binary the instance holding each VM runs ("" if none)
    pending: frozenset[str]  # VMs with a move to another binary recorded, or a second instance left
    # VMs whose record matches what runs: one instance, the one holding the guest, the recorded owner.
    # A VM whose move a crashed agent left unrecorded (the new QEMU runs it, the old one lingers) is not.
    settled: frozenset[str] = frozenset()
