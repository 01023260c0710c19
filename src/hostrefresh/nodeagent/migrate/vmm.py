"""VMM-only refresh: each VM handed from its QEMU to a QEMU of another build on the same host.

No second host, no partition, no nesting: the old and the new QEMU run side by side in the host
that runs the VM, and the guest crosses over by the same local live migration as any handover
(``handover.move``), zero-copy when its RAM is a shared file (the new QEMU maps the same file and
only device state crosses). The record says which binary the new instance runs (``target_qemu``,
written before the move starts), so a restarted agent starts the same one; a rollback moves the VM
back to an instance of the binary it ran before (the record's own spec), and ``commit`` makes the
new binary the VM's own once the refresh is verified.

Which binary a VM runs is observed, not remembered: ``/proc/<pid>/exe`` of the instance that holds it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from hostrefresh.nodeagent.migrate import process
from hostrefresh.nodeagent.migrate.handover import HandoverHooks, move
from hostrefresh.nodeagent.migrate.inventory import Inventory, VmRecord
from hostrefresh.nodeagent.migrate.observe import location, observe, observe_record
from hostrefresh.nodeagent.migrate.process import Instance, instance_alive
from hostrefresh.nodeagent.migrate.types import HandoverRecord, MigrationPolicy, Role, VmLocation, VmmView, VmSpec
from hostrefresh.nodeagent.migrate.vmmbuild import VmmBuild, incompatibilities, probe_build

#: Destination QEMUs started at the same time before a swap (each start is a short burst of CPU).
PREPARE_AT_ONCE = 4


def running_binary(inst: Instance | None) -> str:
    """The path of the program ``inst`` runs, from /proc (``""`` when it does not run). A binary that was
    replaced (or removed) since the process started reads ``<path> (deleted)``: it is no longer the file
    at that path, and never counts as it."""
    if inst is None or not instance_alive(inst):
        return ""
    try:
        return os.readlink(f"/proc/{inst.pid}/exe")
    except OSError:
        return ""


def same_binary(running: str, wanted: str) -> bool:
    return (
        bool(running) and not running.endswith(" (deleted)") and os.path.realpath(running) == os.path.realpath(wanted)
    )


class LocalVmm:
    """The VMM switch of one host's VMs (its inventory under ``runtime_dir``); every call idempotent."""

    def __init__(
        self,
        inventory: Inventory,
        run_dir: Path,
        policy: Callable[[], MigrationPolicy],
        hooks: HandoverHooks | None = None,
    ) -> None:
        self.inventory = inventory
        self.run_dir = run_dir
        self.policy = policy  # read at each call: the agent sets the refresh's policy on the migrator
        self.hooks = hooks or HandoverHooks()
        self._builds: dict[tuple[int, int, int], VmmBuild] = {}

    async def view(self) -> VmmView:
        vms: dict[str, VmLocation] = {}
        binaries: dict[str, str] = {}
        pending: set[str] = set()
        settled: set[str] = set()
        for record in self.inventory.records():
            states = await observe_record(record)
            where = location(states, record.owner)
            vms[record.name] = where
            holder: Role | None = next((r for r, st in states.items() if st.holds), None)
            binaries[record.name] = running_binary(record.instances.get(holder)) if holder else ""
            if record.target_qemu or "target" in record.instances:
                pending.add(record.name)
            if holder == record.owner and set(record.instances) == {holder}:
                settled.add(record.name)
        return VmmView(vms, binaries, frozenset(pending), frozenset(settled))

    # -- compatibility, before anything moves ----------------------------------------------

    async def build(self, binary: str) -> VmmBuild:
        """What ``binary`` supports (machine types, accelerators, objects), probed once per file version."""
        st = os.stat(binary)
        key = (st.st_dev, st.st_ino, st.st_mtime_ns)
        if key not in self._builds:
            self._builds[key] = await probe_build(binary)
        return self._builds[key]

    async def refusals(self, binary: str) -> list[str]:
        """Why ``binary`` cannot receive some VM of this host (empty: it can receive all of them)."""
        target = await self.build(binary)
        problems: list[str] = []
        for record in self.inventory.records():
            inst = record.instances.get(record.owner)
            # Ask the build the VM runs now: through /proc, which reaches it even if its file was replaced.
            running = inst is not None and bool(running_binary(inst))
            source_path = f"/proc/{inst.pid}/exe" if inst is not None and running else process.qemu_binary(record.spec)
            try:
                source = await self.build(source_path)
            except (OSError, ValueError) as exc:
                problems.append(f"{record.name}: cannot examine its current QEMU {source_path}: {exc}")
                continue
            problems += [f"{record.name}: {p}" for p in incompatibilities(record.spec, source, target)]
        return problems

    # -- moves ---------------------------------------------------------------------------------

    async def swap(self, binary: str, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        """Hand each VM not yet on ``binary`` to a new instance of it (``policy().parallel`` at once)."""
        view = await self.view()
        wanted = [n for n in self._names(names) if not self._done(n, binary, view)]
        for name in wanted:  # write-ahead: a restarted agent starts the destination from the same binary
            record = self.inventory.load(name)
            if record.target_qemu != binary:
                self.inventory.save(replace(record, target_qemu=binary))
        await self._prepare(wanted)
        return await self._move_all(wanted, "target")

    async def _prepare(self, names: Sequence[str]) -> None:
        """Start every destination QEMU before the first guest moves, several at once: starting a QEMU
        takes longer than handing a guest over, and a prepared destination waits without cost (``move``
        reuses it; a rollback stops it)."""
        limit = asyncio.Semaphore(PREPARE_AT_ONCE)

        async def one(name: str) -> None:
            async with limit:
                record = self.inventory.load(name)
                if record.owner != "source" or "target" in record.instances:
                    return  # moved already, or a destination exists (``move`` judges whether to reuse it)
                try:
                    inst = await process.launch(record.spec_for("target"), "target", self.run_dir, incoming=True)
                except (process.QemuStartError, OSError):
                    return  # ``move`` starts it again, and records the failure for this VM alone
                self.inventory.save(self.inventory.load(name).with_instance(inst))

        await asyncio.gather(*(one(n) for n in names))

    def _done(self, name: str, binary: str, view: VmmView) -> bool:
        """On ``binary`` and recorded so: a move that a crashed agent did not record is finished by ``move``."""
        return name in view.settled and same_binary(view.binaries.get(name, ""), binary)

    async def restore(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        """Rollback: every VM back on an instance of the binary it ran before the refresh.

        ``move`` to the source role also stops a prepared destination the VM never reached.
        """
        records = await self._move_all(self._names(names), "source")
        for found in self.inventory.records():
            if found.owner != "source":
                continue
            record = found
            target = record.instances.get("target")
            if target is not None and not (await observe(target)).holds:
                # A destination that never took the guest (its VM was lost before it moved): it
                # holds no state of the guest, and nothing will ever migrate to it.
                await process.stop(target, graceful=False)
                record = record.without_instance("target")
            if "target" not in record.instances and record.target_qemu:
                record = replace(record, target_qemu=None)
            if record != found:
                self.inventory.save(record)
        return records

    async def commit(self) -> None:
        """The refresh is verified: the new binary becomes each moved VM's own (roles relabelled)."""
        for record in self.inventory.records():
            if record.owner != "target" or "source" in record.instances:
                continue
            inst = record.instances["target"]
            self.inventory.save(
                replace(
                    record,
                    spec=record.spec_for("target"),
                    target_qemu=None,
                    owner="source",
                    instances={"source": replace(inst, role="source")},
                )
            )

    def _names(self, names: Sequence[str] | None) -> list[str]:
        return list(names) if names is not None else self.inventory.names()

    async def _move_all(self, names: Sequence[str], to: Role) -> list[HandoverRecord]:
        policy = self.policy()
        limit = asyncio.Semaphore(max(1, policy.parallel))

        async def one(name: str) -> HandoverRecord:
            async with limit:
                return await move(self.inventory, name, to, policy=policy, run_dir=self.run_dir, hooks=self.hooks)

        return list(await asyncio.gather(*(one(n) for n in names)))

    async def launch(self, spec: VmSpec) -> VmRecord:
        """Start ``spec`` as a VM of this host (tests and benchmarks; the host's VM runtime in production)."""
        inst = await process.launch(spec, "source", self.run_dir, incoming=False)
        record = VmRecord(spec=spec, owner="source", instances={"source": inst})
        self.inventory.save(record)
        return record
