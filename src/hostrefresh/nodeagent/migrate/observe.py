"""Observe where a VM really is: process liveness plus QMP run state and migration state.

Every decision of the handover is taken from these observations, so a restarted agent (or the agent
of the new L1) sees the same facts as the one that died and takes the same next step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostrefresh.nodeagent.migrate.inventory import VmRecord
from hostrefresh.nodeagent.migrate.process import Instance, instance_alive
from hostrefresh.nodeagent.migrate.types import Role, VmLocation, other
from hostrefresh.nodeagent.qmpsession import QmpError, qmp_session

ACTIVE_MIGRATION = frozenset(
    {"setup", "active", "pre-switchover", "device", "wait-unplug", "cancelling", "postcopy-active"}
)
NOT_HOLDING = frozenset({"inmigrate", "postmigrate", "finish-migrate", "shutdown", "internal-error"})


@dataclass(frozen=True)
class InstanceState:
    """What one instance looks like right now (status None: dead or monitor not answering)."""

    alive: bool = False
    status: str | None = None
    migration: str = "none"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """True if this instance is the one running (or user-paused) the guest."""
        return self.alive and self.status is not None and self.status not in NOT_HOLDING

    @property
    def migrating(self) -> bool:
        return self.alive and self.migration in ACTIVE_MIGRATION


async def observe(inst: Instance | None, *, attempts: int = 3) -> InstanceState:
    """Observe one instance; retries the monitor briefly because it serves one client at a time."""
    if inst is None or not instance_alive(inst):
        return InstanceState()
    for attempt in range(attempts):
        try:
            async with qmp_session(Path(inst.qmp_socket), timeout=2.0) as qmp:
                status = await qmp.status()
                info = await qmp.query_migrate()
            return InstanceState(True, status, str(info.get("status", "none")), info)
        except QmpError:
            if not instance_alive(inst):
                return InstanceState()
            await asyncio.sleep(0.05 * (attempt + 1))
    return InstanceState(alive=True)


async def observe_record(record: VmRecord) -> dict[Role, InstanceState]:
    states = await asyncio.gather(*(observe(record.instances.get(r)) for r in ("source", "target")))
    return {"source": states[0], "target": states[1]}


def location(states: dict[Role, InstanceState], owner: Role) -> VmLocation:
    """Placement from observations; `owner` (the record) only breaks the tie of a finishing migration."""
    holders = [role for role, st in states.items() if st.holds]
    if len(holders) == 1:
        return VmLocation(holders[0])
    if len(holders) == 2:
        return VmLocation(owner)  # cannot happen through hostrefresh; report the recorded owner
    if any(st.migrating or st.status == "finish-migrate" for st in states.values()):
        return VmLocation.MIGRATING
    dest = other(owner)
    if states[owner].migration == "completed" and states[dest].alive:
        return VmLocation.MIGRATING  # switchover done, destination still loading
    return VmLocation.LOST
