"""Real QEMU handovers of the project's test guest, checked by the guest verifier."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from hostrefresh.l0 import sim_create
from hostrefresh.nodeagent.migrate import (
    HandoverError,
    HandoverHooks,
    HandoverPath,
    Instance,
    MigrationPolicy,
    Outcome,
    QemuMigrator,
    VmLocation,
    process,
)
from hostrefresh.nodeagent.migrate import handover as handover_module
from hostrefresh.nodeagent.migrate.observe import observe
from hostrefresh.nodeagent.migrate.process import instance_alive
from hostrefresh.nodeagent.qmpsession import QmpError, qmp_session
from hostrefresh.sim.agent import build_runtimes, parse_args
from hostrefresh.sim.guest import GuestVerifier
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.sysfs import build_fake_sysfs

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

NAMES = ["vm1", "vm2", "vm3"]


async def _verify_all(lab: GuestLab, m: QemuMigrator, names: list[str]) -> None:
    for name in names:
        await GuestVerifier(m.owner_socket(name), lab.root).assert_ok()


async def _start(lab: GuestLab, m: QemuMigrator, names: list[str], *, shared: bool = True) -> None:
    for name in names:
        await m.launch(lab.spec(name, shared=shared))
    for name in names:
        await GuestVerifier(m.owner_socket(name), lab.root).wait_dirtied()


@pytest.mark.parametrize("accel", ["auto", "tcg"])
async def test_three_vms_zero_copy_and_back(qemu_lab: GuestLab, accel: str, force_tcg: Callable[[], None]) -> None:
    if accel == "tcg":
        force_tcg()
    m = qemu_lab.migrator(MigrationPolicy(parallel=3))
    await _start(qemu_lab, m, NAMES)
    records = await m.hand_over()
    assert [(r.outcome, r.path) for r in records] == [(Outcome.MOVED, HandoverPath.ZERO_COPY)] * 3
    for r in records:
        assert r.bytes_transferred is not None and r.bytes_transferred < 1 << 20, "RAM was not copied"
        assert r.downtime_ms is not None and r.total_ms is not None
    assert await m.locate() == dict.fromkeys(NAMES, VmLocation.TARGET)
    await _verify_all(qemu_lab, m, NAMES)
    assert {r.outcome for r in await m.hand_over()} == {Outcome.ALREADY}, "second call is a no-op"
    back = await m.hand_back()
    assert {r.outcome for r in back} == {Outcome.MOVED}
    assert await m.locate() == dict.fromkeys(NAMES, VmLocation.SOURCE)
    await _verify_all(qemu_lab, m, NAMES)


async def test_three_vms_copy_fallback(qemu_lab: GuestLab) -> None:
    m = qemu_lab.migrator(MigrationPolicy(parallel=2))
    await _start(qemu_lab, m, NAMES, shared=False)
    records = await m.hand_over()
    assert [(r.outcome, r.path) for r in records] == [(Outcome.MOVED, HandoverPath.COPY)] * 3
    assert all((r.bytes_transferred or 0) > 32 << 20 for r in records), "RAM went through the stream"
    await _verify_all(qemu_lab, m, NAMES)
    # Without copy fallback a VM without shared RAM is refused and stays where it is.
    strict = qemu_lab.migrator(MigrationPolicy(copy_fallback=False))
    refused = await strict.hand_back(["vm1"])
    assert refused[0].outcome is Outcome.FAILED
    assert (await m.locate())["vm1"] is VmLocation.TARGET


async def test_failed_handover_keeps_vm_running_on_source(qemu_lab: GuestLab) -> None:
    async def kill_target(name: str) -> None:
        record = m.inventory.load(name)
        os.kill(record.instances["target"].pid, signal.SIGKILL)

    # Copy at 8 MiB/s so the stream is still flowing when the destination dies.
    m = qemu_lab.migrator(MigrationPolicy(max_bandwidth=8 << 20), hooks=HandoverHooks(on_migration_started=kill_target))
    await _start(qemu_lab, m, ["vm1"], shared=False)
    [record] = await m.hand_over()
    assert record.outcome is Outcome.FAILED and record.error
    assert await m.locate() == {"vm1": VmLocation.SOURCE}
    assert "target" not in m.inventory.load("vm1").instances
    await _verify_all(qemu_lab, m, ["vm1"])
    # A timeout cancels the migration; the VM stays on its source as well.
    slow = qemu_lab.migrator(MigrationPolicy(max_bandwidth=1 << 20, timeout_s=0.5))
    [timed_out] = await slow.hand_over()
    assert timed_out.outcome is Outcome.FAILED
    await _verify_all(qemu_lab, m, ["vm1"])
    # And a plain retry succeeds.
    [retry] = await qemu_lab.migrator().hand_over()
    assert retry.outcome is Outcome.MOVED
    await _verify_all(qemu_lab, m, ["vm1"])


class SimulatedCrash(BaseException):
    """Stands in for kill -9 of the agent: escapes every `except Exception`, no cleanup runs."""


@pytest.mark.parametrize("crash_point", ["target_started", "migration_started"])
@pytest.mark.parametrize("shared", [True, False], ids=["zero-copy", "copy"])
async def test_resume_after_crash_mid_handover(qemu_lab: GuestLab, crash_point: str, shared: bool) -> None:
    async def crash_on_target(name: str, inst: Instance) -> None:
        raise SimulatedCrash(name)

    async def crash_on_migration(name: str) -> None:
        raise SimulatedCrash(name)

    hooks = (
        HandoverHooks(on_target_started=crash_on_target)
        if crash_point == "target_started"
        else HandoverHooks(on_migration_started=crash_on_migration)
    )
    first = qemu_lab.migrator(MigrationPolicy(max_bandwidth=256 << 20), hooks=hooks)
    await _start(qemu_lab, first, ["vm1"], shared=shared)
    with pytest.raises(SimulatedCrash):
        await first.hand_over()
    # Both instances exist now; a new agent decides from what it observes.
    assert set(first.inventory.load("vm1").instances) == {"source", "target"}
    resumed = qemu_lab.migrator()
    [record] = await resumed.hand_over()
    assert record.outcome is Outcome.MOVED, record
    assert await resumed.locate() == {"vm1": VmLocation.TARGET}
    assert set(resumed.inventory.load("vm1").instances) == {"target"}
    await _verify_all(qemu_lab, resumed, ["vm1"])
    # Rollback after the resumed handover, then commit makes the source the baseline again.
    [back] = await resumed.hand_back()
    assert back.outcome is Outcome.MOVED
    await resumed.commit()
    await _verify_all(qemu_lab, resumed, ["vm1"])


async def test_commit_then_second_refresh(qemu_lab: GuestLab) -> None:
    m = qemu_lab.migrator()
    await _start(qemu_lab, m, ["vm1"])
    await m.prepare_targets()
    [rec] = await m.hand_over()
    assert rec.outcome is Outcome.MOVED and "reused prepared destination" in rec.notes
    await m.commit()
    assert m.inventory.load("vm1").owner == "source"
    [rec2] = await m.hand_over()
    assert rec2.outcome is Outcome.MOVED
    await asyncio.sleep(0.1)
    await _verify_all(qemu_lab, m, ["vm1"])


async def test_recovery_resumes_the_source_only_once_the_destination_is_gone(
    qemu_lab: GuestLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With shared RAM both QEMUs map the guest's memory: the source may run again only after the
    destination of the failed handover is stopped, never beside it."""
    alive_at_resume: list[bool] = []
    original = handover_module.ensure_running

    async def watching(inst: Instance) -> None:
        record = m.inventory.load("vm1")
        target = record.instances.get("target")
        if inst.role == "source":
            alive_at_resume.append(target is not None and instance_alive(target))
        await original(inst)

    async def fail(name: str, inst: Instance) -> None:
        raise HandoverError("injected failure with the destination started")

    monkeypatch.setattr(handover_module, "ensure_running", watching)
    m = qemu_lab.migrator(MigrationPolicy(max_bandwidth=8 << 20), hooks=HandoverHooks(on_target_started=fail))
    await _start(qemu_lab, m, ["vm1"], shared=False)
    [record] = await m.hand_over()
    assert record.outcome is Outcome.FAILED, record
    assert alive_at_resume and not any(alive_at_resume), "the source was resumed while the destination ran"
    assert await m.locate() == {"vm1": VmLocation.SOURCE}
    await _verify_all(qemu_lab, m, ["vm1"])


async def _status(m: QemuMigrator, name: str) -> str:
    async with qmp_session(m.owner_socket(name, aux=False)) as qmp:
        return await qmp.status()


async def test_a_vm_its_owner_paused_stays_paused_through_a_handover_and_a_failed_one(qemu_lab: GuestLab) -> None:
    async def fail(name: str, inst: Instance) -> None:
        raise HandoverError("injected failure with the destination started")

    m = qemu_lab.migrator()
    await _start(qemu_lab, m, ["vm1"])
    async with qmp_session(m.owner_socket("vm1", aux=False)) as qmp:
        await qmp.execute("stop")  # the VM's owner pauses it
    failing = qemu_lab.migrator(hooks=HandoverHooks(on_target_started=fail))
    [failed] = await failing.hand_over()
    assert failed.outcome is Outcome.FAILED
    assert await m.locate() == {"vm1": VmLocation.SOURCE}
    assert await _status(m, "vm1") == "paused", "recovery resumed a guest its owner had paused"
    [moved] = await m.hand_over()
    assert moved.outcome is Outcome.MOVED
    assert await m.locate() == {"vm1": VmLocation.TARGET}
    assert await _status(m, "vm1") == "paused", "the handover resumed a guest its owner had paused"
    [back] = await m.hand_back()
    assert back.outcome is Outcome.MOVED and await _status(m, "vm1") == "paused"
    async with qmp_session(m.owner_socket("vm1", aux=False)) as qmp:
        await qmp.execute("cont")  # the owner resumes it: the guest is intact
    await _verify_all(qemu_lab, m, ["vm1"])


async def test_an_agent_start_kills_what_its_predecessor_started_and_never_recorded(
    qemu_lab: GuestLab, tmp_path: Path
) -> None:
    """The agent died between launching a destination QEMU and recording it: nothing would ever use or
    stop that QEMU. The next agent's start kills it, and leaves every recorded QEMU alone."""
    m = qemu_lab.migrator()
    await _start(qemu_lab, m, ["vm1"])
    record = m.inventory.load("vm1")
    leaked = await process.launch(record.spec_for("target"), "target", m.run_dir, incoming=True)
    sim_create(tmp_path / "l0.state", cpus=4, memory_bytes=8 << 27, durable=False)
    build_fake_sysfs(tmp_path / "sysfs", cpus=4, memory_blocks=8)
    argv = [
        "--node=n1",
        "--l0-backend=sim",
        f"--l0-sim-state={tmp_path / 'l0.state'}",
        f"--sysfs-root={tmp_path / 'sysfs'}",
        "--fake-sysfs",
        f"--vm-runtime={qemu_lab.root}",
        f"--state-dir={tmp_path / 'agent'}",
    ]
    [rt] = build_runtimes(parse_args(argv))
    rt.l0.close()
    assert not instance_alive(leaked), "the unrecorded destination still runs"
    assert not Path(leaked.qmp_socket).exists()
    assert m.inventory.load("vm1") == record and instance_alive(record.instances["source"])
    await _verify_all(qemu_lab, m, ["vm1"])


async def test_a_recovery_never_resumes_the_source_once_the_destination_took_the_whole_state(
    qemu_lab: GuestLab,
) -> None:
    """The handover fails just after the switchover, with the destination's monitor not answering
    (frozen): the destination may run the guest on the shared RAM, so it is neither killed nor is
    the stale source resumed. Once it answers again, the next attempt finishes the handover."""

    async def freeze_after_the_switchover(name: str) -> None:
        record = m.inventory.load(name)
        deadline = asyncio.get_running_loop().time() + 30
        while (await observe(record.instances["source"])).migration != "completed":
            assert asyncio.get_running_loop().time() < deadline, "the stream never completed"
            await asyncio.sleep(0.01)
        os.kill(record.instances["target"].pid, signal.SIGSTOP)
        raise HandoverError("the agent lost its footing after the switchover")

    m = qemu_lab.migrator(hooks=HandoverHooks(on_migration_started=freeze_after_the_switchover))
    await _start(qemu_lab, m, ["vm1"])
    [failed] = await m.hand_over()
    record = m.inventory.load("vm1")
    dst, src = record.instances["target"], record.instances["source"]
    try:
        assert failed.outcome is Outcome.FAILED, failed
        assert instance_alive(dst), "a destination that may run the guest was killed"
        assert (await observe(src)).status == "postmigrate", "the stale source was resumed"
    finally:
        os.kill(dst.pid, signal.SIGCONT)
    [done] = await qemu_lab.migrator().hand_over()
    assert done.outcome is Outcome.MOVED, done
    assert await m.locate() == {"vm1": VmLocation.TARGET}
    await _verify_all(qemu_lab, m, ["vm1"])


async def test_a_guest_paused_for_the_copy_is_resumed_even_after_a_failed_resume(
    qemu_lab: GuestLab, monkeypatch: pytest.MonkeyPatch, force_tcg: Callable[[], None]
) -> None:
    """TCG copy: the handover pauses the guest for the copy. It fails, and so does the recovery's
    resume: the record must still say the pause was ours, or the next attempt takes the guest for one
    its owner paused and leaves it paused on the new side for good."""
    force_tcg()

    async def fail(name: str) -> None:
        raise HandoverError("the handover failed mid-copy")

    async def resume_fails(inst: Instance) -> None:
        raise QmpError("the monitor went away")

    m = qemu_lab.migrator(MigrationPolicy(max_bandwidth=8 << 20), hooks=HandoverHooks(on_migration_started=fail))
    await _start(qemu_lab, m, ["vm1"], shared=False)
    with monkeypatch.context() as patch:
        patch.setattr(handover_module, "ensure_running", resume_fails)
        [failed] = await m.hand_over()
    assert failed.outcome is Outcome.FAILED and "resume failed" in " ".join(failed.notes), failed
    assert m.inventory.load("vm1").paused_for_copy
    [done] = await qemu_lab.migrator().hand_over()
    assert done.outcome is Outcome.MOVED, done
    owner = m.inventory.load("vm1").instances["target"]
    assert (await observe(owner)).status == "running", "the guest was left paused"
    await _verify_all(qemu_lab, m, ["vm1"])
