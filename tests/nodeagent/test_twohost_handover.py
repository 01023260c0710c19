"""The two-host handover protocol with real QEMU test guests: each side touches only its own QEMUs.

Both hosts' migrators run in this process here (their own inventories and run directories, one
channel); the end-to-end tests run them in two isolated hosts. What is checked: the guest runs in
exactly one QEMU at every end state, its memory pattern is intact, and a host that dies takes only
what had not been handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hostrefresh.nodeagent.migrate import HandoverError, HandoverPath, MigrationPolicy, Outcome, VmLocation
from hostrefresh.nodeagent.migrate.channel import HandoverChannel
from hostrefresh.nodeagent.migrate.observe import observe
from hostrefresh.nodeagent.migrate.twohost import HostMigrator
from hostrefresh.nodeagent.qmpsession import qmp_session
from hostrefresh.sim.guest import GuestVerifier
from hostrefresh.sim.guest.lab import GuestLab, kill_processes_mentioning

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

NAMES = ["vm1", "vm2", "vm3"]


class Pair:
    """An old host (L1 1) and a new host (L1 2) of one node, and whether each still runs."""

    def __init__(self, lab: GuestLab) -> None:
        self.lab = lab
        self.alive = {1: True, 2: True}
        channel_dir = lab.root / "channel"
        self.old = self._host(1, 2, channel_dir)
        self.new = self._host(2, 1, channel_dir)
        self._stop = False
        self.die_when_loaded = False
        self.refuse_load: set[int] = set()  # hosts whose destination fails once the state is in
        self.crash_when_decided = False  # the new host's agent dies right after it won ``arrived``
        self.crashed = asyncio.Event()
        self._service: asyncio.Task[None] | None = None

    def _host(self, me: int, peer: int, channel_dir: Path) -> HostMigrator:
        async def lookup() -> int | None:
            return peer if self.alive[peer] else None

        async def state_loaded(vm: str) -> None:
            if me == 2 and self.die_when_loaded:
                self.die()
                raise asyncio.CancelledError  # the receiving host is gone: it decides nothing
            if me in self.refuse_load:
                raise HandoverError("injected: the stream did not load in this host's QEMU")

        async def arrived_decided(vm: str) -> None:
            if me == 2 and self.crash_when_decided:
                self._stop = True  # the agent process is gone: its service loop with it
                self.crashed.set()
                raise asyncio.CancelledError

        return HostMigrator(
            self.lab.root / f"l1-{me}",
            HandoverChannel(channel_dir, me),
            lookup,
            MigrationPolicy(parallel=3),
            answer_timeout_s=10.0,
            on_state_loaded=state_loaded,
            on_arrived_decided=arrived_decided,
        )

    async def restart_new_agent(self) -> None:
        """The new host's agent starts again (its QEMUs kept running): a fresh migrator, same files."""
        if self._service is not None:
            with contextlib.suppress(BaseException):
                await self._service
        self.crash_when_decided = False
        self._stop = False
        self.new = self._host(2, 1, self.lab.root / "channel")
        self.start_service()

    def die(self) -> None:
        """Every process of the new host dies at once, as when the L0 stops it."""
        self.alive[2] = False
        kill_processes_mentioning(str(self.new.runtime_dir))

    def start_service(self) -> None:
        self._service = asyncio.create_task(self.new.serve(lambda: self._stop))

    async def close(self) -> None:
        self._stop = True
        if self._service is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._service
        for m in (self.old, self.new):
            await m.destroy_all()

    async def kill_new_host(self) -> None:
        """Every process of the new host dies at once, as when the L0 stops it."""
        self._stop = True
        if self._service is not None:
            self._service.cancel()
            with contextlib.suppress(BaseException):
                await self._service
        self.die()


async def _start(pair: Pair, names: list[str]) -> None:
    for name in names:
        await pair.old.launch(pair.lab.spec(name, shared=True))
    for name in names:
        await GuestVerifier(_socket(pair.old, name), pair.lab.root).wait_dirtied()


def _socket(m: HostMigrator, name: str) -> Path:
    record = m.inventory.load(name)
    return Path(record.instances["source"].aux_socket)


async def _verify(m: HostMigrator, lab: GuestLab, names: list[str]) -> None:
    for name in names:
        await GuestVerifier(_socket(m, name), lab.root).assert_ok()


async def _holders(pair: Pair, name: str) -> list[int]:
    out = []
    for l1, m in ((1, pair.old), (2, pair.new)):
        record = m.inventory.get(name)
        for inst in record.instances.values() if record else []:
            if (await observe(inst)).holds:
                out.append(l1)
    return out


async def test_handover_and_recall(qemu_lab: GuestLab) -> None:
    pair = Pair(qemu_lab)
    try:
        await _start(pair, NAMES)
        pair.start_service()
        prepared = await pair.old.prepare_targets()
        assert set(prepared) == set(NAMES)
        records = await pair.old.hand_over()
        assert [(r.outcome, r.path) for r in records] == [(Outcome.MOVED, HandoverPath.ZERO_COPY)] * 3, records
        for r in records:
            assert r.bytes_transferred is not None and r.bytes_transferred < 1 << 20, r
            assert r.downtime_ms is not None, r
        assert pair.old.inventory.names() == [], "the old host keeps no QEMU of a handed-over VM"
        assert await pair.old.locate() == dict.fromkeys(NAMES, VmLocation.TARGET)
        for name in NAMES:
            assert await _holders(pair, name) == [2]
        await _verify(pair.new, qemu_lab, NAMES)
        back = await pair.old.hand_back()
        assert {r.outcome for r in back} == {Outcome.MOVED}, back
        assert await pair.old.locate() == dict.fromkeys(NAMES, VmLocation.SOURCE)
        for name in NAMES:
            assert await _holders(pair, name) == [1]
        await _verify(pair.old, qemu_lab, NAMES)
        assert pair.old.channel.vms() == [], "a finished rollback leaves nothing in the channel"
    finally:
        await pair.close()


async def test_new_host_dies_before_resume_source_comes_back(qemu_lab: GuestLab) -> None:
    """The state reached the new host, which died before it resumed the guest: the source runs again."""
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1"])
        pair.start_service()
        await pair.old.prepare_targets()
        pair.die_when_loaded = True
        records = await pair.old.hand_over()
        assert [r.outcome for r in records] == [Outcome.FAILED], records
        assert "gone" in (records[0].error or ""), records
        assert pair.old.channel.vms() == [], "an aborted transfer is forgotten once the guest runs again"
        assert await pair.old.locate() == {"vm1": VmLocation.SOURCE}
        assert await _holders(pair, "vm1") == [1]
        await _verify(pair.old, qemu_lab, ["vm1"])
    finally:
        await pair.close()


async def test_vm_on_dead_new_host_is_lost_not_resumed(qemu_lab: GuestLab) -> None:
    """Once the new host ran the guest, its death loses the VM: the stale source is never resumed."""
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1"])
        pair.start_service()
        await pair.old.prepare_targets()
        assert [r.outcome for r in await pair.old.hand_over()] == [Outcome.MOVED]
        await pair.kill_new_host()
        assert await pair.old.locate() == {"vm1": VmLocation.LOST}
        records = await pair.old.hand_back()
        assert [r.outcome for r in records] == [Outcome.LOST], records
        assert "new host" in (records[0].error or "")
        assert await _holders(pair, "vm1") == []
    finally:
        await pair.close()


async def test_a_vm_its_owner_paused_stays_paused_there_and_back(qemu_lab: GuestLab) -> None:
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1", "vm2"])
        async with qmp_session(_control(pair.old, "vm1")) as qmp:
            await qmp.execute("stop")  # the VM's owner pauses it
        pair.start_service()
        await pair.old.prepare_targets()
        records = await pair.old.hand_over()
        assert {r.outcome for r in records} == {Outcome.MOVED}, records
        assert any("paused by its owner" in note for r in records if r.name == "vm1" for note in r.notes)
        assert await _status(pair.new, "vm1") == "paused", "the handover resumed a VM its owner paused"
        assert await _status(pair.new, "vm2") == "running"
        back = await pair.old.hand_back()
        assert {r.outcome for r in back} == {Outcome.MOVED}, back
        assert await _status(pair.old, "vm1") == "paused", "the hand-back resumed a VM its owner paused"
        assert await _status(pair.old, "vm2") == "running"
    finally:
        await pair.close()


async def test_the_owners_pause_is_taken_when_the_vm_moves_not_when_it_was_offered(qemu_lab: GuestLab) -> None:
    """The offers go out at BootingTarget; the owner pauses vm1 and resumes vm2 after that. Each VM
    lands on the new host as its owner left it at the moment it moved."""
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1", "vm2"])
        async with qmp_session(_control(pair.old, "vm2")) as qmp:
            await qmp.execute("stop")
        pair.start_service()
        await pair.old.prepare_targets()
        async with qmp_session(_control(pair.old, "vm1")) as qmp:
            await qmp.execute("stop")  # paused by its owner after the offer
        async with qmp_session(_control(pair.old, "vm2")) as qmp:
            await qmp.execute("cont")  # running again after the offer
        records = await pair.old.hand_over()
        assert {r.outcome for r in records} == {Outcome.MOVED}, records
        assert await _status(pair.new, "vm1") == "paused", "the handover resumed a VM its owner paused"
        assert await _status(pair.new, "vm2") == "running", "the handover left a running VM paused"
    finally:
        await pair.close()


async def test_a_send_that_fails_before_its_offer_leaves_an_owner_paused_vm_paused(qemu_lab: GuestLab) -> None:
    """The new host goes away between the start of the handover and the offer: nothing was paused by
    the handover, so nothing is resumed (a VM its owner paused stays paused)."""
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1"])
        async with qmp_session(_control(pair.old, "vm1")) as qmp:
            await qmp.execute("stop")
        looks = 0

        async def vanishing_peer() -> int | None:
            nonlocal looks
            looks += 1
            return 2 if looks == 1 else None

        pair.old.peer = vanishing_peer
        [record] = await pair.old.hand_over()
        assert record.outcome is Outcome.FAILED, record
        assert await _status(pair.old, "vm1") == "paused", "a failed send resumed a VM its owner paused"
    finally:
        await pair.close()


def _control(m: HostMigrator, name: str) -> Path:
    return Path(m.inventory.load(name).instances["source"].qmp_socket)


async def _status(m: HostMigrator, name: str) -> str:
    async with qmp_session(_control(m, name)) as qmp:
        return await qmp.status()


async def _wait(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_failed_recall_keeps_the_vm_known_and_the_next_try_brings_it_home(qemu_lab: GuestLab) -> None:
    """A recall whose destination fails in the old host: the guest runs on in the new host, the old host
    still knows it is there (so a retried rollback never stops the new host with it), and the next
    recall brings it home."""
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1"])
        pair.start_service()
        await pair.old.prepare_targets()
        assert [r.outcome for r in await pair.old.hand_over()] == [Outcome.MOVED]
        pair.refuse_load.add(1)
        back = await pair.old.hand_back()
        assert [r.outcome for r in back] == [Outcome.FAILED], back

        async def runs_on_new_host_again() -> bool:
            return await _holders(pair, "vm1") == [2]

        await _wait(runs_on_new_host_again, 20, "the guest running again on the new host")
        assert await pair.old.locate() == {"vm1": VmLocation.TARGET}, "the old host lost sight of the VM"
        pair.refuse_load.clear()
        back = await pair.old.hand_back()
        assert [r.outcome for r in back] == [Outcome.MOVED], back
        assert await _holders(pair, "vm1") == [1]
        await _verify(pair.old, qemu_lab, ["vm1"])
        assert pair.old.channel.vms() == []
    finally:
        await pair.close()


async def _moved_then_dies_on_the_new_host(pair: Pair, vm: str) -> None:
    """vm1 and vm2 handed over to the new host, where ``vm``'s QEMU is then killed."""
    await _start(pair, ["vm1", "vm2"])
    pair.start_service()
    await pair.old.prepare_targets()
    assert {r.outcome for r in await pair.old.hand_over()} == {Outcome.MOVED}
    os.kill(pair.new.inventory.load(vm).instances["source"].pid, signal.SIGKILL)


async def test_recalling_a_vm_whose_qemu_died_on_the_new_host_says_lost(qemu_lab: GuestLab) -> None:
    """The guest's QEMU died in the new host (or the guest powered off, which ends QEMU too): the recall
    says at once that it runs nowhere, every time it is asked, instead of waiting for an offer."""
    pair = Pair(qemu_lab)
    try:
        await _moved_then_dies_on_the_new_host(pair, "vm1")
        first = {r.name: r for r in await asyncio.wait_for(pair.old.hand_back(), 8)}
        assert first["vm2"].outcome == Outcome.MOVED, first
        again = {r.name: r for r in await asyncio.wait_for(pair.old.hand_back(), 8)}  # the retried rollback
        for back in (first, again):
            assert back["vm1"].outcome == Outcome.LOST, back
            assert "new host" in (back["vm1"].error or ""), back
        assert await _holders(pair, "vm2") == [1]
        await _verify(pair.old, qemu_lab, ["vm2"])
    finally:
        await pair.close()


async def test_once_the_new_host_is_gone_the_channel_is_empty_and_a_lost_vm_still_known(qemu_lab: GuestLab) -> None:
    """vm1 died on the new host; the rollback brought vm2 back and stopped the new host. Nothing of the
    handover stays in the channel (a stale outcome would mislead a later refresh's transfer of a VM of
    that name), and the old host still knows vm1 as lost: it keeps a record of it, with no instance."""
    pair = Pair(qemu_lab)
    try:
        await _moved_then_dies_on_the_new_host(pair, "vm1")
        back = {r.name: r for r in await asyncio.wait_for(pair.old.hand_back(), 8)}
        assert back["vm1"].outcome == Outcome.LOST and back["vm2"].outcome == Outcome.MOVED, back
        await pair.kill_new_host()
        await pair.old.tidy()
        assert pair.old.channel.vms() == [], pair.old.channel.vms()
        assert (await pair.old.locate()) == {"vm1": VmLocation.LOST, "vm2": VmLocation.SOURCE}
        assert pair.old.inventory.load("vm1").instances == {}
    finally:
        await pair.close()


async def test_a_vm_whose_qemu_died_here_before_it_moved_is_lost_not_recalled(qemu_lab: GuestLab) -> None:
    """vm1's QEMU ended on the old host before the handover (killed, or its guest powered off): the
    handover says lost, and so does every rollback at once, instead of asking the new host for a VM it
    never had (which answered nothing, and the rollback retried for ever)."""
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1", "vm2"])
        pair.start_service()
        os.kill(pair.old.inventory.load("vm1").instances["source"].pid, signal.SIGKILL)
        await pair.old.prepare_targets()
        sent = {r.name: r for r in await pair.old.hand_over()}
        assert sent["vm1"].outcome == Outcome.LOST, sent
        assert sent["vm2"].outcome == Outcome.MOVED, sent
        back = {r.name: r for r in await asyncio.wait_for(pair.old.hand_back(), 8)}
        assert back["vm1"].outcome == Outcome.LOST and back["vm2"].outcome == Outcome.MOVED, back
        again = {r.name: r for r in await asyncio.wait_for(pair.old.hand_back(), 8)}  # the retried rollback
        assert again["vm1"].outcome == Outcome.LOST and "vm2" not in again, again
        assert await _holders(pair, "vm2") == [1]
        await _verify(pair.old, qemu_lab, ["vm2"])
    finally:
        await pair.close()


async def test_an_arrival_its_agent_decided_then_died_is_finished_by_the_next_agent(qemu_lab: GuestLab) -> None:
    """The new host's agent won ``arrived`` and died before it resumed the guest and recorded it: the
    next agent of that host resumes the guest and records it as its own (else it waits paused forever,
    and the node reports it lost)."""
    pair = Pair(qemu_lab)
    try:
        await _start(pair, ["vm1"])
        pair.start_service()
        await pair.old.prepare_targets()
        pair.crash_when_decided = True
        sending = asyncio.ensure_future(pair.old.hand_over())
        await asyncio.wait_for(pair.crashed.wait(), 20)
        await pair.restart_new_agent()
        assert [r.outcome for r in await sending] == [Outcome.MOVED]

        async def resumed_and_recorded() -> bool:
            record = pair.new.inventory.get("vm1")
            return record is not None and record.owner == "source" and await _status(pair.new, "vm1") == "running"

        await _wait(resumed_and_recorded, 20, "the guest resumed and recorded by the new agent")
        assert await _holders(pair, "vm1") == [2]
        assert await pair.old.locate() == {"vm1": VmLocation.TARGET}
        await _verify(pair.new, qemu_lab, ["vm1"])
    finally:
        await pair.close()
