"""Where a node's refresh stands, derived from observed state only (pure functions).

The agent never trusts its memory: after a crash, an L1 switchover or a restart it observes the L0
(partitions, L1s, nested), the kernel (what is offline) and the VMs (where each runs), and these
functions say which step to run next, or what rollback still has to undo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hostrefresh.api import Phase
from hostrefresh.l0 import L1, L0State, Partition
from hostrefresh.nodeagent.migrate import VmLocation
from hostrefresh.nodeagent.migrate.vmm import same_binary


@dataclass(frozen=True)
class Observation:
    """One look at the node."""

    l0: L0State
    offline_cpus: frozenset[int]  # offline now, minus what was offline before the refresh
    offline_blocks: frozenset[int]
    vms: Mapping[str, VmLocation]
    target_sha: bytes | None  # None: no image known (nothing booted from one), so no L1 is the target
    # sysfs writes that timed out and are still in the kernel: an offline may yet complete, and what
    # it takes must be handed back, so nothing is finished while one is pending
    writes_pending: frozenset[str] = frozenset()

    @property
    def running(self) -> tuple[L1, ...]:
        return tuple(sorted(self.l0.running_l1s, key=lambda x: x.id))

    @property
    def target_l1(self) -> L1 | None:
        """The running L1 booted from the target image, if any."""
        if self.target_sha is None:  # (never a placeholder checksum: the first host may carry zeros)
            return None
        return next((x for x in reversed(self.running) if x.image_sha256 == self.target_sha), None)

    @property
    def source_l1(self) -> L1 | None:
        """The running L1 that is not the target (the old host)."""
        target = self.target_l1
        return next((x for x in self.running if target is None or x.id != target.id), None)

    def spare_partitions(self) -> tuple[Partition, ...]:
        """Partitions no running L1 owns: made for the target, or left by a stopped one."""
        running = {x.id for x in self.running}
        return tuple(p for p in self.l0.partitions if p.owner_l1 not in running and p.parent is not None)

    @property
    def resources_taken(self) -> bool:
        return bool(self.offline_cpus or self.offline_blocks)

    def vms_on(self, where: VmLocation) -> list[str]:
        return sorted(name for name, loc in self.vms.items() if loc == where)


def forward_position(obs: Observation) -> Phase:
    """The next forward step to run (Verifying when only verification is left)."""
    source, target = obs.source_l1, obs.target_l1
    if target is not None and source is not None:
        pending = [n for n, loc in obs.vms.items() if loc != VmLocation.TARGET]
        return Phase.MIGRATING if pending else Phase.RETIRING
    if target is not None:  # only the new host runs: retired (or already on the target image)
        return Phase.DEVIRTUALIZING if obs.l0.nested or obs.resources_taken or obs.writes_pending else Phase.VERIFYING
    if obs.l0.nested:
        return Phase.BOOTING_TARGET if obs.spare_partitions() else Phase.PARTITIONING
    if obs.spare_partitions():
        return Phase.NESTED_ENABLING
    return Phase.PARTITIONING if obs.resources_taken else Phase.PREFLIGHT


def rollback_done(obs: Observation) -> bool:
    """The node is as it was: one L1 (the old one), no extra partition, nested off, all back online."""
    return (
        obs.target_l1 is None
        and len(obs.running) == 1
        and not obs.spare_partitions()
        and not obs.l0.nested
        and not obs.resources_taken
        and not obs.writes_pending
        and not obs.vms_on(VmLocation.TARGET)
        and not obs.vms_on(VmLocation.MIGRATING)
        and not obs.vms_on(VmLocation.LOST)  # a lost VM is never part of a clean rollback
    )


def can_still_roll_back(obs: Observation) -> bool:
    """False once the old L1 is gone (retired): then only rolling forward is possible."""
    return obs.source_l1 is not None or obs.target_l1 is None


# -- VMM-only refresh (scope VMM): the node's one host stays, each VM moves to a new QEMU ----------


@dataclass(frozen=True)
class VmmObservation:
    """One look at a node's VMs for a VMM-only refresh: where each runs, on which binary."""

    vms: Mapping[str, VmLocation]
    binaries: Mapping[str, str]  # the binary the instance holding each VM runs ("" if none)
    pending: frozenset[str]  # VMs with a move to the target recorded, or a second instance left
    target: str  # real path of the target QEMU binary
    settled: frozenset[str]  # VMs whose record matches what runs (see ``VmmView.settled``)

    def on_target(self, name: str) -> bool:
        """Runs on the target binary, and is recorded so (else a move is still to be finished)."""
        return name in self.settled and same_binary(self.binaries.get(name, ""), self.target)

    @property
    def started(self) -> bool:
        return bool(self.pending) or bool(self.vms_on(VmLocation.TARGET)) or bool(self.vms_on(VmLocation.MIGRATING))

    def vms_on(self, where: VmLocation) -> list[str]:
        return sorted(name for name, loc in self.vms.items() if loc == where)


def vmm_forward_position(obs: VmmObservation) -> Phase:
    """The next step of a VMM-only refresh: Preflight (nothing moved), Migrating, or Verifying."""
    left = [n for n in obs.vms if not obs.on_target(n)]
    if not left:
        return Phase.VERIFYING
    return Phase.MIGRATING if obs.started else Phase.PREFLIGHT


def vmm_rollback_done(obs: VmmObservation) -> bool:
    """Every VM on an instance of the binary it ran before (its own role), nothing left half-way."""
    return not obs.pending and not any(loc != VmLocation.SOURCE for loc in obs.vms.values())


def vmm_can_still_roll_back(obs: VmmObservation) -> bool:
    """False once Verifying made the new binary every VM's own (nothing moving, all on the target)."""
    return not obs.vms or obs.started or any(not obs.on_target(n) for n in obs.vms)
