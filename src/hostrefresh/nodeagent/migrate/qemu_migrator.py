"""The real migrator: VMs are QEMU processes on this machine, handed over by local live migration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from hostrefresh.nodeagent.migrate import process
from hostrefresh.nodeagent.migrate.handover import HandoverHooks, move
from hostrefresh.nodeagent.migrate.inventory import Inventory, VmRecord
from hostrefresh.nodeagent.migrate.observe import location, observe, observe_record
from hostrefresh.nodeagent.migrate.types import (
    HandoverRecord,
    MigrationPolicy,
    Outcome,
    Role,
    VmLocation,
    VmSpec,
)
from hostrefresh.nodeagent.migrate.vmm import LocalVmm


class QemuMigrator:
    """Hands over the VMs listed in the inventory under `runtime_dir` (sockets and logs live there too)."""

    def __init__(
        self,
        runtime_dir: Path,
        policy: MigrationPolicy | None = None,
        hooks: HandoverHooks | None = None,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.run_dir = runtime_dir / "run"
        self.inventory = Inventory(runtime_dir)
        self.policy = policy or MigrationPolicy()
        self.hooks = hooks or HandoverHooks()
        self._vmm = LocalVmm(self.inventory, self.run_dir, lambda: self.policy, self.hooks)

    def reap_unrecorded(self) -> list[str]:
        """At the agent's start, before it serves anything: kill the destination QEMUs a predecessor
        started in this host's run directory and died before recording (``process.reap_unrecorded``)."""
        return process.reap_unrecorded(self.run_dir, self.inventory.monitors())

    # -- VM lifecycle (tests, benchmark, and adopting VMs into the inventory) --

    async def launch(self, spec: VmSpec) -> VmRecord:
        """Start `spec` on the source side and record it; returns the existing record if it runs."""
        existing = self.inventory.get(spec.name)
        if existing is not None:
            states = await observe_record(existing)
            if any(st.holds for st in states.values()):
                return existing
        inst = await process.launch(spec, "source", self.run_dir, incoming=False)
        record = VmRecord(spec=spec, owner="source", instances={"source": inst})
        self.inventory.save(record)
        return record

    async def destroy(self, name: str) -> None:
        """Kill every instance of VM `name`, delete its shared RAM file and its record."""
        record = self.inventory.get(name)
        if record is None:
            return
        for inst in record.instances.values():
            await process.stop(inst, graceful=False)
        if record.spec.mem_path:
            Path(record.spec.mem_path).unlink(missing_ok=True)
        self.inventory.delete(name)

    async def destroy_all(self) -> None:
        for name in self.inventory.names():
            await self.destroy(name)

    def owner_socket(self, name: str, *, aux: bool = True) -> Path:
        """Monitor socket of the instance that owns VM `name` (aux: the observers' monitor)."""
        record = self.inventory.load(name)
        inst = record.instances[record.owner]
        return Path(inst.aux_socket if aux else inst.qmp_socket)

    # -- the Migrator interface --

    def _names(self, names: Sequence[str] | None) -> list[str]:
        return list(names) if names is not None else self.inventory.names()

    async def locate(self) -> dict[str, VmLocation]:
        result: dict[str, VmLocation] = {}
        for record in self.inventory.records():
            result[record.name] = location(await observe_record(record), record.owner)
        return result

    async def prepare_targets(self, names: Sequence[str] | None = None) -> dict[str, float]:
        prepared: dict[str, float] = {}
        for name in self._names(names):
            record = self.inventory.load(name)
            target = record.instances.get("target")
            if target is not None and (await observe(target)).alive:
                continue
            inst = await process.launch(record.spec_for("target"), "target", self.run_dir, incoming=True)
            self.inventory.save(record.with_instance(inst))
            prepared[name] = inst.start_ms
        return prepared

    async def _move_all(self, names: Sequence[str] | None, to: Role) -> list[HandoverRecord]:
        limit = asyncio.Semaphore(max(1, self.policy.parallel))

        async def one(name: str) -> HandoverRecord:
            async with limit:
                return await move(self.inventory, name, to, policy=self.policy, run_dir=self.run_dir, hooks=self.hooks)

        return list(await asyncio.gather(*(one(n) for n in self._names(names))))

    async def hand_over(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        return await self._move_all(names, "target")

    async def hand_back(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        records = await self._move_all(names, "source")
        # Prepared but unused targets of VMs that never moved are part of the partition being destroyed.
        for record in self.inventory.records():
            target = record.instances.get("target")
            if record.owner == "source" and target is not None:
                await process.stop(target, graceful=False)
                self.inventory.save(record.without_instance("target"))
        return records

    async def footprint(self) -> int:
        return sum(r.spec.memory_mib for r in self.inventory.records()) << 20

    async def tidy(self) -> None:
        """Nothing to tidy: a same-host handover keeps no state outside each VM's record."""

    async def commit(self) -> None:
        """The target instances become each VM's own (relabelled "source"), as after a VMM refresh."""
        await self._vmm.commit()

    def vmm(self) -> LocalVmm:
        return self._vmm


def failed(records: Sequence[HandoverRecord]) -> list[HandoverRecord]:
    """The records that did not end with the VM on its destination."""
    return [r for r in records if r.outcome in (Outcome.FAILED, Outcome.LOST)]
