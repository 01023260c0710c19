"""VM handover between two hosts of one node: each agent acts only on the QEMUs of its own host.

The old host's agent (the sender) offers each VM on the handover channel; the new host's agent (the
receiver) starts a paused destination QEMU in its own host from the offered spec and says it is
ready; the sender migrates its QEMU to the destination's socket (zero-copy when the guest's RAM is a
shared file the L0's memory grant exposes to the new host); the receiver, once the state is loaded,
wins the transfer's outcome (``arrived``) and resumes the guest; the sender then stops its stale
QEMU. A rollback recalls the VM: the roles swap, the same protocol runs back.

No agent starts, stops or talks to a process of the other host: all they share is the channel
(``channel.py``), the guest-RAM files and the L0. ``HostMigrator`` is the same code in both hosts;
which half runs depends on who drives the refresh (the agent of the older running L1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient

from hostrefresh import failpoints
from hostrefresh.nodeagent import timing
from hostrefresh.nodeagent.migrate import process
from hostrefresh.nodeagent.migrate.channel import ABORTED, ARRIVED, HandoverChannel, Transfer
from hostrefresh.nodeagent.migrate.handover import HandoverError, ensure_running, fill_metrics, millis, wait_migration
from hostrefresh.nodeagent.migrate.inventory import Inventory, VmRecord
from hostrefresh.nodeagent.migrate.observe import InstanceState, observe, observe_record
from hostrefresh.nodeagent.migrate.types import (
    HandoverPath,
    HandoverRecord,
    MigrationPolicy,
    Outcome,
    Role,
    VmLocation,
    VmSpec,
)
from hostrefresh.nodeagent.migrate.vmm import LocalVmm
from hostrefresh.nodeagent.qmpsession import QmpError, qmp_session
from hostrefresh.nodeagent.qmpsession import connect as qmp_connect

log = logging.getLogger("hostrefresh.agent.handover")

PeerLookup = Callable[[], Awaitable[int | None]]
#: How long a sender waits for the receiver's answer (ready, arrived, released) before giving up.
ANSWER_TIMEOUT_S = 60.0
POLL_S = 0.02
#: How often a wait on the channel also asks the L0 whether the other host still runs.
PEER_CHECK_S = 0.05


class _StartGate:
    """Holds each sender until ``count`` have arrived (or ``timeout_s`` passed: one that failed before
    it got here must not hold the others' guests up)."""

    def __init__(self, count: int, timeout_s: float = 2.0) -> None:
        self.count = count
        self.timeout_s = timeout_s
        self.arrived = 0
        self.open = asyncio.Event()

    async def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.count:
            self.open.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.open.wait(), self.timeout_s)


def _event_time(event: dict[str, Any]) -> float:
    """When QEMU emitted ``event`` (its own wall clock), else now."""
    stamp = event.get("timestamp") or {}
    if isinstance(stamp.get("seconds"), int) and isinstance(stamp.get("microseconds"), int):
        return float(stamp["seconds"]) + float(stamp["microseconds"]) / 1e6
    return time.time()


async def _incoming_status(client: QMPClient) -> str:
    reply = await client.execute("query-migrate")
    return str(reply.get("status", "none")) if isinstance(reply, dict) else "none"


def _offered_spec(offer: dict[str, Any]) -> VmSpec:
    """The VM spec an offer carries (without the sender's zeroCopy, which is the transfer's, not the VM's)."""
    return VmSpec.from_dict({k: v for k, v in offer["spec"].items() if k != "zeroCopy"})


def _fill_figures(result: HandoverRecord, info: dict[str, Any]) -> None:
    """QEMU's figures of a completed migration, as the sender's QEMU reports them."""
    if info.get("status") != "completed":
        return
    fill_metrics(result, info)
    if result.notes and result.total_ms is not None:
        result.downtime_ms = result.total_ms  # paused by us for the whole copy (TCG)


class HostMigrator:
    """The VMs of one host (its inventory under ``runtime_dir``) and its half of every transfer."""

    def __init__(
        self,
        runtime_dir: Path,
        channel: HandoverChannel,
        peer: PeerLookup,
        policy: MigrationPolicy | None = None,
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
        on_state_loaded: Callable[[str], Awaitable[None]] | None = None,
        on_arrived_decided: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.run_dir = runtime_dir / "run"
        self.inventory = Inventory(runtime_dir)
        self.channel = channel
        self.me = channel.me
        self.peer = peer
        self.policy = policy or MigrationPolicy()
        self.answer_timeout_s = answer_timeout_s
        self.on_state_loaded = on_state_loaded  # test seam: the receiver holds the state, not yet decided
        self.on_arrived_decided = on_arrived_decided  # test seam: decided, guest not yet resumed or recorded
        self._busy: dict[str, asyncio.Task[Any]] = {}  # service-loop work per VM
        self._gate: _StartGate | None = None
        # A VMM-only refresh never leaves this host: its VMs move between two QEMUs of their own.
        self._vmm = LocalVmm(self.inventory, self.run_dir, lambda: self.policy)

    def reap_unrecorded(self) -> list[str]:
        """At the agent's start, before it serves anything: kill the destination QEMUs a predecessor
        started in this host's run directory and died before recording (``process.reap_unrecorded``)."""
        return process.reap_unrecorded(self.run_dir, self.inventory.monitors())

    # -- VM lifecycle (the machine's VM runtime starts VMs through this in the VM's host) --

    async def launch(self, spec: VmSpec) -> VmRecord:
        """Start ``spec`` in this host and record it; an existing running VM is left as it is."""
        existing = self.inventory.get(spec.name)
        if existing is not None:
            # Whichever instance holds it (one of a VMM refresh's two QEMUs, before the commit): it runs.
            states = await observe_record(existing)
            if any(st.holds for st in states.values()):
                return existing
        inst = await process.launch(spec, "source", self.run_dir, incoming=False)
        record = VmRecord(spec=spec, owner="source", instances={"source": inst})
        self.inventory.save(record)
        return record

    # -- observation ---------------------------------------------------------------------------

    async def locate(self) -> dict[str, VmLocation]:
        await self.settle_arrivals()
        peer = await self.peer()
        out: dict[str, VmLocation] = {}
        names = set(self.inventory.names()) | set(self.channel.vms())
        for name in sorted(names):
            out[name] = await self._locate_one(name, peer)
        return out

    async def _locate_one(self, name: str, peer: int | None) -> VmLocation:
        record = self.inventory.get(name)
        own = record.instances.get("source") if record else None
        state = await observe(own)
        here = VmLocation.SOURCE if peer is None or self.me < peer else VmLocation.TARGET
        there = VmLocation.TARGET if here == VmLocation.SOURCE else VmLocation.SOURCE
        if state.holds:
            return here
        if peer is not None:
            out = self.channel.transfer(name, self.me, peer)
            if out.outcome() == ARRIVED:
                return there
            if out.offer() is not None and (state.migrating or state.alive):
                return VmLocation.MIGRATING
            back = self.channel.transfer(name, peer, self.me)
            if back.offer() is not None and back.outcome() != ARRIVED:
                return VmLocation.MIGRATING if back.outcome() != ABORTED else there
            if record is None or own is None:
                return there  # offered to us or ours: the peer holds it (it runs there or is lost there)
        return VmLocation.LOST

    # -- the Migrator interface (the driving agent: the old host's, until the retire) -----------

    async def _require_peer(self) -> int:
        peer = await self.peer()
        if peer is None:
            raise HandoverError("the other host does not run: nothing to hand VMs to or back from")
        return peer

    def _own_names(self, names: Sequence[str] | None) -> list[str]:
        return list(names) if names is not None else self.inventory.names()

    async def prepare_targets(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Offer every VM of this host to the new host and wait until each destination is ready."""
        peer = await self._require_peer()
        pending: dict[str, Transfer] = {}
        for name in self._own_names(names):
            record = self.inventory.load(name)
            own = record.instances.get("source")
            state = await observe(own)
            if not state.holds:
                continue  # already sent (or not running here): nothing to prepare
            transfer = self.channel.transfer(name, self.me, peer)
            if transfer.offer() is None:
                transfer.post_offer(self._offer_spec(record.spec), user_paused=state.status == "paused")
            pending[name] = transfer
        deadline = time.monotonic() + self.answer_timeout_s
        prepared: dict[str, float] = {}
        while pending:
            for name, transfer in list(pending.items()):
                ready = transfer.ready()
                if ready is not None:
                    prepared[name] = float(ready.get("startMillis") or 0.0)
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise HandoverError(f"the new host did not prepare {', '.join(sorted(pending))} in time")
            if pending and await self.peer() != peer:
                raise HandoverError(f"the new host (L1 {peer}) stopped before preparing {', '.join(sorted(pending))}")
            if pending:
                await asyncio.sleep(POLL_S)
        return prepared

    def _offer_spec(self, spec: VmSpec) -> dict[str, Any]:
        # The new host runs the VM on its own VMM (the one that comes with it), never on a binary
        # path of the old host's: the host refresh replaces QEMU along with the kernel.
        data = replace(spec, qemu="").to_dict()
        data["zeroCopy"] = self.policy.zero_copy and spec.shared_memory
        return data

    async def hand_over(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        peer = await self._require_peer()
        targets = self._own_names(names)
        # When all VMs move at once, each sender readies its QEMU (monitor open, capabilities and
        # parameters set) and then waits for the others: every guest is paused within moments of the
        # first, so the whole switch is about as long as the slowest single handover.
        self._gate = _StartGate(len(targets)) if 1 < len(targets) <= self.policy.parallel else None
        try:
            return await self._parallel(targets, lambda n: self._send(n, peer))
        finally:
            self._gate = None

    async def hand_back(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        """Rollback: every VM not running here comes back (recalled from the new host, or kept here)."""
        peer = await self.peer()
        located = await self.locate()
        wanted = [n for n, loc in located.items() if loc != VmLocation.SOURCE or n not in self.inventory.names()]
        if names is not None:
            wanted = [n for n in wanted if n in names]
        records = await self._parallel(wanted, lambda n: self._bring_home(n, peer))
        if peer is None:
            for name in self.channel.vms():
                if located.get(name) == VmLocation.SOURCE:
                    self.channel.forget(name)
        return records

    async def footprint(self) -> int:
        return sum(r.spec.memory_mib for r in self.inventory.records()) << 20

    async def tidy(self) -> None:
        """Once the other host is gone, no transfer can go on: the channel forgets every one. A VM lost
        on the way (it ran on the other host when it died, so this host has no record of it) first gets
        a record here, from its offer: that record, with no instance, is how this host (its Preflight,
        ``kubectl hostrefresh describe``) still knows of the lost VM, as of one lost here."""
        if await self.peer() is not None:
            return
        located = await self.locate()
        for name in self.channel.vms():
            if located.get(name) != VmLocation.SOURCE and name not in self.inventory.names():
                offer = next((t.offer() for t in self.channel.transfers() if t.vm == name and t.offer()), None)
                if offer is not None:
                    self.inventory.save(VmRecord(spec=_offered_spec(offer), owner="source", instances={}))
            self.channel.forget(name)

    async def commit(self) -> None:
        """The refresh is over on this host: the channel forgets every transfer."""
        for name in self.channel.vms():
            self.channel.forget(name)

    def vmm(self) -> LocalVmm:
        return self._vmm

    async def _parallel(
        self, names: list[str], one: Callable[[str], Awaitable[HandoverRecord]]
    ) -> list[HandoverRecord]:
        limit = asyncio.Semaphore(max(1, self.policy.parallel))

        async def run(name: str) -> HandoverRecord:
            async with limit:
                return await one(name)

        return list(await asyncio.gather(*(run(n) for n in names)))

    async def _await_file(
        self, read: Callable[[], object], peer: int, timeout_s: float, interval: float = 0.001
    ) -> bool:
        """Poll a channel file (cheap) until ``read()`` gives something; False when L1 ``peer`` stopped
        running or ``timeout_s`` ran out first. The L0 is asked only every ``PEER_CHECK_S``."""
        deadline = time.monotonic() + timeout_s
        next_check = 0.0
        while not read():
            now = time.monotonic()
            if now > deadline:
                return False
            if now >= next_check:
                if await self.peer() != peer:
                    return bool(read())
                next_check = now + PEER_CHECK_S
            await asyncio.sleep(interval)
        return True

    # -- sending one VM ----------------------------------------------------------------------

    async def _send(self, name: str, peer: int) -> HandoverRecord:
        """Move VM ``name`` from this host to L1 ``peer``; on failure it keeps running here."""
        t0 = time.monotonic()
        result = HandoverRecord(name=name, direction="target" if peer > self.me else "source", outcome=Outcome.ALREADY)
        transfer = self.channel.transfer(name, self.me, peer)
        try:
            await self._send_loop(transfer, result)
        except (QmpError, HandoverError, OSError) as exc:
            result.outcome = Outcome.FAILED
            result.error = str(exc)
            await self._take_back(transfer, result)
        result.wall_ms = (time.monotonic() - t0) * 1000.0
        return result

    async def _send_loop(self, transfer: Transfer, result: HandoverRecord) -> None:
        deadline = time.monotonic() + self.policy.timeout_s
        started = False
        while True:
            record = self.inventory.get(transfer.vm)
            own = record.instances.get("source") if record else None
            state = await observe(own)
            outcome = transfer.outcome()
            if outcome == ARRIVED:
                await self._finish_sent(transfer, record, state, result, started)
                return
            if outcome == ABORTED:
                raise HandoverError("the transfer was aborted")
            if await self.peer() != transfer.to:
                raise HandoverError(f"the receiving host (L1 {transfer.to}) is gone")
            if own is None or not state.alive:
                if transfer.decide(ABORTED) == ARRIVED:
                    continue  # it arrived after all: finish as sent
                # Say so on the channel: a host that asked for the VM back learns it runs nowhere
                # instead of waiting for an offer that never comes.
                transfer.post_lost("its QEMU died (or its guest powered off) on this host")
                result.outcome = Outcome.LOST
                result.error = "this host's QEMU is gone and the VM did not arrive"
                return
            if state.migrating or state.status == "finish-migrate":
                started = True
                await self._wait_sent(Path(own.qmp_socket), result, deadline)
                continue
            if state.migration == "completed" and not state.holds:  # (an incoming one left "completed" too)
                started = True
                if result.total_ms is None:
                    _fill_figures(result, state.info)
                if time.monotonic() > deadline:
                    raise HandoverError("the receiver did not take the guest after the migration completed")
                await self._await_file(transfer.outcome, transfer.to, deadline - time.monotonic())
                continue
            if started and state.migration in ("failed", "cancelled"):
                raise HandoverError(f"migration {state.migration}: {state.info.get('error-desc', '')}")
            if transfer.offer() is None:
                transfer.post_offer(self._offer_spec(record.spec), user_paused=state.status == "paused")  # type: ignore[union-attr]
            if transfer.ready() is None:
                if time.monotonic() > deadline:
                    raise HandoverError("the receiving host never prepared a destination")
                await asyncio.sleep(POLL_S)
                continue
            assert record is not None
            sent_at = time.time()
            await self._start_migration(transfer, record, result)
            started = True
            await self._wait_sent(Path(own.qmp_socket), result, deadline)
            timing.record(
                "migration",
                sent_at,
                time.time(),
                vm=transfer.vm,
                downtime_ms=result.downtime_ms,
                total_ms=result.total_ms,
            )

    async def _start_migration(self, transfer: Transfer, record: VmRecord, result: HandoverRecord) -> None:
        offer = transfer.offer() or {}
        zero_copy = bool((offer.get("spec") or {}).get("zeroCopy"))
        if not zero_copy and not self.policy.copy_fallback:
            raise HandoverError("RAM is not shared and copy fallback is disabled")
        result.path = HandoverPath.ZERO_COPY if zero_copy else HandoverPath.COPY
        own = record.instances["source"]
        async with qmp_session(Path(own.qmp_socket)) as qmp:
            await qmp.set_capabilities({"x-ignore-shared": zero_copy})
            await qmp.set_parameters(
                {"max-bandwidth": self.policy.max_bandwidth, "downtime-limit": self.policy.downtime_limit_ms}
            )
            status = await qmp.status()
            if bool(offer.get("userPaused")) != (status == "paused"):
                # The offer went out at BootingTarget; the owner has paused or resumed the guest since.
                # Said before the stream starts: the receiver reads it before it resumes anything.
                transfer.post_offer(offer["spec"], user_paused=status == "paused")
            pause_for_copy = not zero_copy and record.spec.accel == "tcg" and status == "running"
            if self._gate is not None:
                await self._gate.arrive()
            if pause_for_copy:
                # QEMU < 9.0 loses a TCG guest's writes during a live copy (see handover.py): copy it paused.
                await qmp.execute("stop")
                result.notes.append("TCG: guest paused for the copy (QEMU TCG dirty tracking)")
            await qmp.execute("migrate", {"uri": f"unix:{transfer.socket}"})

    async def _wait_sent(self, socket: Path, result: HandoverRecord, deadline: float) -> None:
        _fill_figures(result, await wait_migration(socket, self.policy, deadline))

    async def _finish_sent(
        self, transfer: Transfer, record: VmRecord | None, state: InstanceState, result: HandoverRecord, acted: bool
    ) -> None:
        """The receiver runs the guest: stop this host's stale QEMU and forget the VM here."""
        await self._await_file(transfer.arrived, transfer.to, self.answer_timeout_s)
        figures = transfer.arrived()
        if record is not None:
            own = record.instances.get("source")
            if own is not None and state.alive:
                await process.stop(own)
            failpoints.hit(failpoints.SEND_FINISHED, HandoverError)
            self.inventory.delete(transfer.vm)
        transfer.post_released()  # this host's stale QEMU is gone
        result.outcome = Outcome.MOVED if acted or record is not None else Outcome.ALREADY
        if figures:
            resume = millis(figures.get("resumeMillis"))
            if result.downtime_ms is not None and resume is not None:
                result.downtime_ms += resume  # the guest also waited for the receiver's `cont`
            result.target_start_ms = millis(figures.get("startMillis"))
            if figures.get("userPaused"):
                result.notes.append("paused by its owner: left paused on the new host")

    async def _take_back(self, transfer: Transfer, result: HandoverRecord) -> None:
        """After a failed send: the guest runs here again, unless it already runs on the receiver.

        The source is resumed only once the outcome ``aborted`` stands (so the receiver never
        resumes the destination) and the receiver has stopped its destination or is gone.
        """
        record = self.inventory.get(transfer.vm)
        own = record.instances.get("source") if record else None
        if own is not None:
            state = await observe(own)
            if state.migrating:
                with contextlib.suppress(QmpError):
                    async with qmp_session(Path(own.qmp_socket)) as qmp:
                        await qmp.execute("migrate_cancel")
        if transfer.offer() is None:
            # Nothing was offered, so nothing was started or paused: the guest is as its owner left it.
            await self._resume_own(transfer, own, result, user_paused=True)
            return
        standing = transfer.decide(ABORTED)
        if standing == ARRIVED:
            result.outcome = Outcome.ALREADY
            result.error = None
            state = await observe(own)
            if result.total_ms is None:  # the failure hid a migration that completed: keep its figures
                _fill_figures(result, state.info)
            await self._finish_sent(transfer, record, state, result, True)
            return
        failpoints.hit(failpoints.SEND_ABORTED, HandoverError)
        released = await self._await_file(transfer.released, transfer.to, self.answer_timeout_s, POLL_S)
        if not released and await self.peer() == transfer.to:
            result.notes.append("receiver did not confirm its destination stopped: guest kept paused")
            result.error = f"{result.error}; kept paused until the new host confirms"
            return
        offer = transfer.offer() or {}
        await self._resume_own(transfer, own, result, user_paused=bool(offer.get("userPaused")))
        if result.outcome == Outcome.LOST:
            transfer.post_lost("its QEMU died on this host before it could run the guest again")
        else:
            self.channel.forget_transfer(transfer)

    async def _resume_own(
        self, transfer: Transfer, own: process.Instance | None, result: HandoverRecord, *, user_paused: bool
    ) -> None:
        state = await observe(own)
        if own is None or not state.alive:
            result.outcome = Outcome.LOST
            result.error = f"{result.error}; and this host's QEMU is gone"
            return
        if not user_paused:
            await ensure_running(own)

    # -- receiving one VM --------------------------------------------------------------------

    async def _receive(self, transfer: Transfer) -> HandoverRecord:
        """Be the destination of ``transfer``: prepare, wait for the state, win ``arrived``, resume."""
        t0 = time.monotonic()
        direction: Role = "target" if transfer.to > transfer.frm else "source"
        result = HandoverRecord(name=transfer.vm, direction=direction, outcome=Outcome.ALREADY)
        try:
            await self._receive_loop(transfer, result)
        except (QmpError, process.QemuStartError, HandoverError, OSError) as exc:
            result.outcome = Outcome.FAILED
            result.error = str(exc)
            if transfer.decide(ABORTED) == ABORTED:
                await self._release(transfer)
        result.wall_ms = (time.monotonic() - t0) * 1000.0
        return result

    async def _receive_loop(self, transfer: Transfer, result: HandoverRecord) -> None:
        offer = transfer.offer()
        if offer is None:
            raise HandoverError("no offer")
        spec = _offered_spec(offer)
        zero_copy = bool(offer["spec"].get("zeroCopy"))
        record = self.inventory.get(transfer.vm)
        dest = record.instances.get("target") if record else None
        if transfer.outcome() == ARRIVED:
            await self._settle(transfer)  # decided earlier (a restarted agent): finish what it left
            return
        if transfer.outcome() == ABORTED:
            await self._release(transfer)
            raise HandoverError("the sender aborted the transfer")
        fresh = dest is None or not (await observe(dest)).alive
        if dest is None or fresh:
            dest = await process.launch(spec, "target", self.run_dir, incoming=True, paused=True)
            self.inventory.save(VmRecord(spec=spec, owner="target", instances={"target": dest}))
            result.target_start_ms = dest.start_ms
        await self._await_state(transfer, dest, fresh, zero_copy, result)

    async def _await_state(
        self, transfer: Transfer, dest: process.Instance, fresh: bool, zero_copy: bool, result: HandoverRecord
    ) -> None:
        """Hold the destination's monitor, listen for the end of the incoming migration, then decide."""
        # Whether the owner had paused the guest, as the sender saw it when it started the stream (it
        # says so in the offer before that): read again once the stream runs, so that no file is read
        # while the guest waits to be resumed (a stream too quick to be seen running: at its end).
        user_paused = bool((transfer.offer() or {}).get("userPaused"))
        read_while_running = False
        client = await qmp_connect(dest.qmp_socket, name="hostrefresh-receiver")
        try:
            with client.listener(names=["MIGRATION"]) as listener:
                migration = await _incoming_status(client)
                if fresh or (migration == "none" and transfer.ready() is None):
                    await client.execute(
                        "migrate-set-capabilities",
                        {
                            "capabilities": [
                                {"capability": "x-ignore-shared", "state": zero_copy},
                                {"capability": "events", "state": True},
                            ]
                        },
                    )
                    transfer.socket.unlink(missing_ok=True)
                    await client.execute("migrate-incoming", {"uri": f"unix:{transfer.socket}"})
                    transfer.post_ready(result.target_start_ms or 0.0)
                loaded_at = time.time()
                while migration not in ("completed", "failed", "cancelled"):
                    if transfer.outcome() == ABORTED:
                        break
                    with contextlib.suppress(TimeoutError):
                        event: dict[str, Any] = dict(await asyncio.wait_for(listener.get(), 0.5))
                        migration = str((event.get("data") or {}).get("status", migration))
                        loaded_at = _event_time(event)
                        if migration == "active" and not read_while_running:
                            user_paused, read_while_running = bool((transfer.offer() or {}).get("userPaused")), True
                        continue
                    migration = await _incoming_status(client)
                    loaded_at = time.time()
                seen = time.monotonic()
                if migration != "completed":
                    raise HandoverError(f"incoming migration {migration}")
                failpoints.hit(failpoints.STATE_LOADED, HandoverError)
                if not read_while_running:
                    user_paused = bool((transfer.offer() or {}).get("userPaused"))
                if self.on_state_loaded is not None:
                    await self.on_state_loaded(transfer.vm)
                if transfer.decide(ARRIVED) != ARRIVED:
                    raise HandoverError("the sender aborted the transfer")
                failpoints.hit(failpoints.ARRIVAL_DECIDED, HandoverError)
                if self.on_arrived_decided is not None:
                    await self.on_arrived_decided(transfer.vm)
                if not user_paused:
                    await client.execute("cont")
                resume_ms = (time.monotonic() - seen) * 1000.0
                running_at = time.time()  # the guest runs here (before the record's fsync below)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        home = replace(dest, role="source")
        spec = _offered_spec(transfer.offer() or {})
        self.inventory.save(VmRecord(spec=spec, owner="source", instances={"source": home}))
        resumed_at = time.time()
        timing.record("switch", loaded_at, resumed_at, vm=transfer.vm, resume_ms=resume_ms, running=running_at)
        transfer.post_arrived(
            {
                "resumedAt": resumed_at,
                "resumeMillis": resume_ms,
                "startMillis": result.target_start_ms,
                "userPaused": user_paused,
            }
        )
        result.outcome = Outcome.MOVED

    async def settle_arrivals(self) -> None:
        """Finish every arrival a crashed agent of this host decided but did not complete."""
        for transfer in self.channel.incoming():
            task = self._busy.get(transfer.vm)
            if task is not None and not task.done():
                continue  # this agent is receiving it right now
            if transfer.outcome() == ARRIVED and transfer.arrived() is None:
                await self._settle(transfer)

    async def _settle(self, transfer: Transfer) -> None:
        """``arrived`` stands, so this host owns the guest: resume the destination (unless its owner
        had paused it), record it as this host's own and tell the sender. Between the decision and
        the record an agent may have died: the guest then waits paused in a destination the record
        still calls "target", and nothing else would ever resume it."""
        if transfer.arrived() is not None:
            return
        record = self.inventory.get(transfer.vm)
        if record is None:
            return  # the destination's record never made it: the VM is lost, and locate says so
        offer = transfer.offer() or {}
        inst = record.instances.get("target") or record.instances.get("source")
        if inst is None or not (await observe(inst)).alive:
            return
        if record.owner != "source" or "target" in record.instances:  # (else resumed and recorded already)
            if not offer.get("userPaused"):
                await ensure_running(inst)
            home = replace(inst, role="source")
            self.inventory.save(VmRecord(spec=record.spec, owner="source", instances={"source": home}))
        log.warning("%s: finished an arrival a previous agent decided but left unrecorded", transfer.vm)
        transfer.post_arrived({"resumedAt": time.time(), "userPaused": bool(offer.get("userPaused")), "settled": True})

    async def _receive_once(self, transfer: Transfer) -> HandoverRecord:
        """Receive ``transfer``, or join the receive this host's service loop already started for it.

        Both may see the new host's offer first; two receivers would each start a destination QEMU for
        one guest (one of them left over), and the loser would write into the channel after the
        transfer was forgotten. The service loop skips a VM with work under way in ``_busy``.
        """
        task = self._busy.get(transfer.vm)
        if task is None or task.done():
            task = asyncio.ensure_future(self._receive(transfer))
            self._busy[transfer.vm] = task
        result: HandoverRecord = await task
        return result

    async def _release(self, transfer: Transfer) -> None:
        """The outcome is ``aborted``: stop the destination (it never ran the guest) and say so."""
        record = self.inventory.get(transfer.vm)
        dest = record.instances.get("target") if record else None
        if dest is not None:
            await process.stop(dest, graceful=False)
            self.inventory.delete(transfer.vm)
        transfer.post_released()

    # -- bringing a VM home (rollback, by the driving agent) ------------------------------------

    async def _bring_home(self, name: str, peer: int | None) -> HandoverRecord:
        result = HandoverRecord(name=name, direction="source", outcome=Outcome.ALREADY)
        out = self.channel.transfer(name, self.me, peer) if peer is not None else None
        if out is not None and out.offer() is not None and out.outcome() != ARRIVED:
            # Still in flight to the peer: abort it; the guest stays (or runs again) here.
            return await self._abort_outgoing(out, result)
        arrived_there = any(
            t.outcome() == ARRIVED and t.frm == self.me for t in self.channel.transfers() if t.vm == name
        )
        if peer is None:
            record = self.inventory.get(name)
            if record is not None and (await observe(record.instances.get("source"))).holds:
                return result
            result.outcome = Outcome.LOST
            result.error = "the VM ran on the new host, which is gone" if arrived_there else "runs nowhere"
            return result
        back = self.channel.transfer(name, peer, self.me)
        if back.outcome() == ARRIVED:
            self.channel.forget(name)
            return result
        if not arrived_there and back.offer() is None and back.lost() is None:
            # It never went to the new host (its QEMU here ended before it moved): nothing to recall,
            # and asking the new host for it would wait for an answer that never comes.
            record = self.inventory.get(name)
            if record is not None and (await observe(record.instances.get("source"))).holds:
                return result
            result.outcome = Outcome.LOST
            result.error = "runs nowhere: its QEMU on this host ended before it moved"
            return result
        if back.lost() is None:
            self.channel.request_recall(name, self.me)
        if not await self._await_file(lambda: back.offer() or back.lost(), peer, self.answer_timeout_s, POLL_S):
            result.outcome = Outcome.FAILED
            result.error = "the new host did not send the VM back"
            return result
        lost = back.lost()
        if lost is not None:
            result.outcome = Outcome.LOST
            result.error = f"runs nowhere: on the new host, {lost.get('reason', 'its QEMU is gone')}"
            return result
        result = await self._receive_once(back)
        if result.outcome in (Outcome.MOVED, Outcome.ALREADY):
            # Forget the transfer only once the new host stopped its stale QEMU (it says ``released``).
            await self._await_file(back.released, peer, self.answer_timeout_s, POLL_S)
            self.channel.forget(name)
        return result

    async def _abort_outgoing(self, transfer: Transfer, result: HandoverRecord) -> HandoverRecord:
        result.error = "rolled back while in flight"
        await self._take_back(transfer, result)
        if result.outcome == Outcome.ALREADY and result.error is None:
            return result  # it arrived after all; the caller recalls it on the next pass
        if result.outcome != Outcome.LOST:
            result.outcome = Outcome.MOVED
            result.error = None
        return result

    # -- the service loop of a host that does not drive the refresh -----------------------------

    async def serve_once(self) -> None:
        """Start the work the channel asks of this host: receive offers, send back recalled VMs."""
        for name in list(self._busy):
            task = self._busy[name]
            if task.done():
                del self._busy[name]
                if not task.cancelled() and task.exception() is not None:
                    log.error("handover of %s failed: %s", name, task.exception())
        await self.settle_arrivals()
        for transfer in self.channel.incoming():
            if transfer.vm in self._busy or transfer.offer() is None:
                continue
            outcome = transfer.outcome()
            if outcome == ARRIVED or (outcome == ABORTED and transfer.released()):
                continue
            self._busy[transfer.vm] = asyncio.create_task(self._receive(transfer))
        peer = await self.peer()
        if peer is None:
            return
        for name in self.inventory.names():
            if name in self._busy or self.channel.recall_requested(name) != peer:
                continue
            back = self.channel.transfer(name, self.me, peer)
            if back.outcome() == ARRIVED or back.lost() is not None:
                continue
            self._busy[name] = asyncio.create_task(self._send(name, peer))

    async def serve(self, stop: Callable[[], bool]) -> None:
        """Serve the channel until ``stop()``; the tasks it started finish on their own."""
        while not stop():
            try:
                await self.serve_once()
            except Exception:  # a broken channel file must not stop the service
                log.exception("handover channel service failed; retrying")
            await asyncio.sleep(POLL_S)

    async def destroy_all(self) -> None:
        """Stop every QEMU this host recorded (tests and the simulator's clean-up)."""
        for record in self.inventory.records():
            for inst in record.instances.values():
                await process.stop(inst, graceful=False)
            self.inventory.delete(record.name)
