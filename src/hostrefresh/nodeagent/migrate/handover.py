"""Move one VM between its source and target QEMU (local live migration), resumable and idempotent.

`move()` is a loop of observe -> one step -> observe, so it can start from any state a crashed agent
left behind: destination already running (finish: stop the old side, record), migration still active
in QEMU (wait for it), switchover done but destination still loading (wait), nothing started (prepare
the destination and migrate). A failed migration leaves the guest running where it was: QEMU resumes
the source, we `cont` it if needed, and the half-started destination is killed.

Copy migration under TCG pauses the guest first: QEMU before 9.0 (fixed by "physmem: Fix migration
dirty bitmap coherency with TCG memory access") does not re-arm dirty tracking in the TCG TLB after a
bitmap sync, so a page the guest keeps writing is sent once and its later writes are lost. Paused, the
guest's RAM is copied exactly (longer downtime; TCG is for machines without KVM, where this is fine).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hostrefresh.nodeagent.migrate import process
from hostrefresh.nodeagent.migrate.inventory import Inventory, VmRecord
from hostrefresh.nodeagent.migrate.observe import InstanceState, observe, observe_record
from hostrefresh.nodeagent.migrate.process import Instance
from hostrefresh.nodeagent.migrate.types import (
    HandoverPath,
    HandoverRecord,
    MigrationPolicy,
    Outcome,
    Role,
    other,
)
from hostrefresh.nodeagent.qmpsession import QmpError, qmp_session

InstanceHook = Callable[[str, Instance], Awaitable[None]]
NameHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class HandoverHooks:
    """Test seams (fault injection, crash simulation); a hook raising Exception fails the handover."""

    on_target_started: InstanceHook | None = None
    on_migration_started: NameHook | None = None


class HandoverError(RuntimeError):
    """A handover step failed; the guest is still on its source."""


def incoming_socket(dst: Instance) -> Path:
    """Where destination ``dst`` listens for its migration stream: beside its monitor sockets, unique
    per instance (so an agent that resumes a handover finds the socket a predecessor had it open)."""
    return Path(dst.qmp_socket).with_suffix(".mig")


def millis(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def fill_metrics(result: HandoverRecord, info: dict[str, Any]) -> None:
    result.downtime_ms = millis(info.get("downtime"))
    result.total_ms = millis(info.get("total-time"))
    result.setup_ms = millis(info.get("setup-time"))
    ram = info.get("ram", {})
    if isinstance(ram, dict) and isinstance(ram.get("transferred"), int):
        result.bytes_transferred = int(ram["transferred"])


async def wait_migration(socket: Path, policy: MigrationPolicy, deadline: float) -> dict[str, Any]:
    """Poll query-migrate on the source until it ends; cancel it at `deadline`."""
    cancelled = False
    async with qmp_session(socket) as qmp:
        while True:
            info = await qmp.query_migrate()
            status = info.get("status", "none")
            if status in ("completed", "failed", "cancelled", "none"):
                return info
            if not cancelled and time.monotonic() > deadline:
                await qmp.execute("migrate_cancel")
                cancelled = True
            await asyncio.sleep(policy.poll_interval_s)


async def ensure_running(inst: Instance) -> None:
    """Resume a guest that a failed or cancelled migration left paused."""
    async with qmp_session(Path(inst.qmp_socket)) as qmp:
        if await qmp.status() in ("paused", "postmigrate", "finish-migrate"):
            await qmp.execute("cont")


class _Mover:
    """One `move()` call; holds the record being built so steps stay short."""

    def __init__(
        self,
        inventory: Inventory,
        name: str,
        to: Role,
        *,
        policy: MigrationPolicy,
        run_dir: Path,
        hooks: HandoverHooks,
    ) -> None:
        self.inv = inventory
        self.name = name
        self.to = to
        self.frm = other(to)
        self.policy = policy
        self.run_dir = run_dir
        self.hooks = hooks
        self.result = HandoverRecord(name=name, direction=to, outcome=Outcome.ALREADY)
        self.acted = False
        self.deadline = time.monotonic() + policy.timeout_s

    async def run(self) -> HandoverRecord:
        t0 = time.monotonic()
        try:
            await self._loop()
        except (QmpError, process.QemuStartError, HandoverError, OSError) as exc:
            self.result.outcome = Outcome.FAILED
            self.result.error = str(exc)
            await self._recover()
        self.result.wall_ms = (time.monotonic() - t0) * 1000.0
        return self.result

    def _record(self) -> VmRecord:
        return self.inv.load(self.name)

    async def _loop(self) -> None:
        while True:
            record = self._record()
            states = await observe_record(record)
            src, dst = states[self.frm], states[self.to]
            if dst.holds and dst.migrating:
                # It is still handing the guest the other way (a move a predecessor started): cancel
                # that first, or stopping the other side could land just after its switchover.
                self.acted = True
                await self._cancel(Path(record.instances[self.to].qmp_socket))
                continue
            if dst.holds and not src.holds:
                await self._finish(record, src)
                return
            if dst.holds and src.holds:
                raise HandoverError("both instances run the guest; refusing to touch it")
            if src.migrating or src.status == "finish-migrate":
                self.acted = True
                await wait_migration(Path(record.instances[self.frm].qmp_socket), self.policy, self.deadline)
                continue
            if src.holds:
                if self.acted and src.migration in ("failed", "cancelled"):
                    raise HandoverError(f"migration {src.migration}: {src.info.get('error-desc', '')}")
                await self._migrate(record, dst)
                continue
            if src.alive and src.migration == "completed" and dst.alive:
                await self._settle_destination(record, dst)
                continue
            self._lost(record, src, dst)
            return

    def _lost(self, record: VmRecord, src: InstanceState, dst: InstanceState) -> None:
        self.result.outcome = Outcome.LOST
        self.result.error = (
            f"guest runs nowhere: {self.frm}={src.status or 'gone'}/{src.migration}, {self.to}={dst.status or 'gone'}"
        )
        if src.alive and src.migration == "completed" and not dst.alive and not record.spec.shared_memory:
            self.result.notes.append("destination died after switchover; source kept paused for an operator")

    async def _settle_destination(self, record: VmRecord, dst: InstanceState) -> None:
        """Switchover done: the destination is loading state or was left paused."""
        if dst.status in ("paused", "postmigrate") and not record.user_paused:
            await ensure_running(record.instances[self.to])
        elif time.monotonic() > self.deadline:
            raise HandoverError(f"destination stuck in {dst.status} after switchover")
        else:
            await asyncio.sleep(self.policy.poll_interval_s)

    async def _finish(self, record: VmRecord, src: InstanceState) -> None:
        """The destination runs the guest: stop what is left of the old side and record ownership."""
        old = record.instances.get(self.frm)
        if old is not None:
            if src.alive:
                await process.stop(old)
            record = record.without_instance(self.frm)
        if record.owner != self.to or old is not None:
            self.acted = True
        if record.paused_for_copy:  # we paused it for the copy: it runs again on its destination
            await ensure_running(record.instances[self.to])
        self.inv.save(replace(record, owner=self.to, paused_for_copy=False))
        self.result.outcome = Outcome.MOVED if self.acted else Outcome.ALREADY

    async def _prepare_destination(self, record: VmRecord, dst: InstanceState) -> Instance:
        """Reuse a prepared destination waiting for its stream, else start a fresh one."""
        inst = record.instances.get(self.to)
        if inst is not None and dst.alive and dst.status == "inmigrate" and dst.migration == "none":
            self.result.notes.append("reused prepared destination")
            return inst
        if inst is not None:
            await process.stop(inst, graceful=False)
        inst = await process.launch(record.spec_for(self.to), self.to, self.run_dir, incoming=True)
        self.inv.save(record.with_instance(inst))
        self.result.target_start_ms = inst.start_ms
        if self.hooks.on_target_started is not None:
            await self.hooks.on_target_started(self.name, inst)
        return inst

    async def _migrate(self, record: VmRecord, dst_state: InstanceState) -> None:
        spec = record.spec
        zero_copy = self.policy.zero_copy and spec.shared_memory
        if not zero_copy and not self.policy.copy_fallback:
            raise HandoverError("RAM is not shared and copy fallback is disabled")
        self.result.path = HandoverPath.ZERO_COPY if zero_copy else HandoverPath.COPY
        self.acted = True
        src = record.instances[self.frm]
        async with qmp_session(Path(src.qmp_socket)) as sq:
            status = await sq.status()
        user_paused = status == "paused" and not record.paused_for_copy
        if user_paused != record.user_paused:  # write-ahead: no recovery, by us or a successor, resumes it
            record = replace(self.inv.load(self.name), user_paused=user_paused)
            self.inv.save(record)
        dst = await self._prepare_destination(record, dst_state)
        uri_path = incoming_socket(dst)
        caps = {"x-ignore-shared": zero_copy}
        params = {"max-bandwidth": self.policy.max_bandwidth, "downtime-limit": self.policy.downtime_limit_ms}
        await self._listen(dst, caps, uri_path)
        async with qmp_session(Path(src.qmp_socket)) as sq:
            await sq.set_capabilities(caps)
            await sq.set_parameters(params)
            paused = not zero_copy and spec.accel == "tcg" and status == "running"
            if paused:
                self.inv.save(replace(self.inv.load(self.name), paused_for_copy=True))  # write-ahead
                await sq.execute("stop")
                self.result.notes.append("TCG: guest paused for the copy (QEMU TCG dirty tracking)")
            await sq.execute("migrate", {"uri": f"unix:{uri_path}"})
        if self.hooks.on_migration_started is not None:
            await self.hooks.on_migration_started(self.name)
        info = await wait_migration(Path(src.qmp_socket), self.policy, self.deadline)
        fill_metrics(self.result, info)
        if paused:  # the guest stood still for the whole copy, not only QEMU's final stop
            self.result.downtime_ms = self.result.total_ms
        uri_path.unlink(missing_ok=True)

    async def _cancel(self, socket: Path) -> None:
        """Cancel the migration of the QEMU at ``socket`` and wait until QEMU says how it ended."""
        async with qmp_session(socket) as qmp:
            await qmp.execute("migrate_cancel")
        await wait_migration(socket, self.policy, time.monotonic() + 10)

    async def _listen(self, dst: Instance, caps: dict[str, bool], uri_path: Path) -> None:
        """Have the destination listen on its own socket; one a killed predecessor already told to
        listen (it died before starting the migration) listens there still, and is used as it is."""
        try:
            async with qmp_session(Path(dst.qmp_socket)) as dq:
                await dq.set_capabilities(caps)
                await dq.execute("migrate-incoming", {"uri": f"unix:{uri_path}"})
        except QmpError:
            if not uri_path.is_socket():
                raise
            self.result.notes.append("destination was listening already (a predecessor started it)")

    async def _recover(self) -> None:
        """After a failure: destination killed, then the guest back to running on the source side.

        In that order: with shared RAM both QEMUs map the guest's memory, so the source may run
        again only once the destination is gone (``process.stop`` returns when it is).
        """
        record = self.inv.get(self.name)
        if record is None:
            return
        src_inst = record.instances.get(self.frm)
        dst_inst = record.instances.get(self.to)
        src = await observe(src_inst)
        dst = await observe(dst_inst)
        if dst.holds and not src.holds:
            return  # it did arrive after all; the next call records it
        if src_inst is not None and src.alive and src.migrating:
            try:
                async with qmp_session(Path(src_inst.qmp_socket)) as qmp:
                    await qmp.execute("migrate_cancel")
                await wait_migration(Path(src_inst.qmp_socket), self.policy, time.monotonic() + 10)
            except QmpError as exc:
                self.result.notes.append(f"cancel failed: {exc}")
        # The whole state went over (an instance that once received the guest says "completed" too,
        # but it holds the guest: running, or paused by its owner).
        src_now = await observe(src_inst)
        handed = src_now.migration == "completed" and src_now.alive and not src_now.holds
        if dst_inst is not None:
            dst_now = await observe(dst_inst)
            if dst_now.holds:
                return  # the guest arrived while the migration was cancelled: it runs there, not here
            if dst_now.alive and (handed or dst_now.status is None):
                # The destination has (or is about to run) the guest, or its monitor does not say
                # whether it does: killing it and resuming the source could run stale state on RAM the
                # destination changed. Both stay as they are; the next attempt observes again.
                self.result.notes.append(
                    f"destination {'has the whole state' if handed else 'does not answer'}: kept, source stays paused"
                )
                return
            await process.stop(dst_inst, graceful=False)
            record = record.without_instance(self.to)
            self.inv.save(record)
        if handed:
            # The destination took the whole state and died: it may have run the guest on its shared
            # RAM (or written its disks) before it did. The source stays paused for a person.
            self.result.outcome = Outcome.LOST
            self.result.notes.append("destination died after the switchover; source kept paused for an operator")
            return
        resumed = False
        if src_inst is not None and (await observe(src_inst)).alive and not record.user_paused:
            try:
                await ensure_running(src_inst)
                resumed = True
            except QmpError as exc:
                self.result.notes.append(f"resume failed: {exc}")
        if record.paused_for_copy and resumed:
            # Only now: a guest we paused and could not resume must stay "ours to resume", or the next
            # attempt would take it for one its owner paused and leave it paused for good.
            self.inv.save(replace(record, paused_for_copy=False))
        if not (await observe(src_inst)).holds:
            self.result.outcome = Outcome.LOST


async def move(
    inventory: Inventory,
    name: str,
    to: Role,
    *,
    policy: MigrationPolicy,
    run_dir: Path,
    hooks: HandoverHooks | None = None,
) -> HandoverRecord:
    """Make the `to` instance run VM `name`; see the module docstring for the resumed states."""
    return await _Mover(inventory, name, to, policy=policy, run_dir=run_dir, hooks=hooks or HandoverHooks()).run()
