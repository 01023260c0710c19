"""The two-host handover protocol with real QEMU test guests: each side touches only its own QEMUs.

Both hosts' migrators run in this process here (their own inventories and run directories, one
channel); the end-to-end tests run them in two isolated hosts. What is checked: the guest runs in
exactly one QEMU at every end state, its memory pattern is intact, and a host that dies takes only
what had not been handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from hostrefresh.nodeagent.migrate import HandoverPath, MigrationPolicy, Outcome, VmLocation
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
        self._service: asyncio.Task[None] | None = None

    def _host(self, me: int, peer: int, channel_dir: Path) -> HostMigrator:
        async def lookup() -> int | None:
            return peer if self.alive[peer] else None

        return HostMigrator(
            self.lab.root / f"l1-{me}",
            HandoverChannel(channel_dir, me),
            lookup,
            MigrationPolicy(parallel=3),
            answer_timeout_s=10.0,
            on_state_loaded=self._state_loaded,
        )

    async def _state_loaded(self, vm: str) -> None:
        if self.die_when_loaded:
            self.die()
            raise asyncio.CancelledError  # the receiving host is gone: it decides nothing

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


def _control(m: HostMigrator, name: str) -> Path:
    return Path(m.inventory.load(name).instances["source"].qmp_socket)


async def _status(m: HostMigrator, name: str) -> str:
    async with qmp_session(_control(m, name)) as qmp:
        return await qmp.status()
