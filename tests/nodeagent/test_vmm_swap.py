"""VMM-only refresh between two real QEMU builds: an older Debian build and the installed one.

Each guest is handed from a QEMU of one build to a QEMU of the other on the same host, zero-copy,
and its whole memory pattern is verified where it ends up; the binary each guest runs is read from
/proc, never from the records.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from hostrefresh.nodeagent.migrate import (
    HandoverPath,
    MigrationPolicy,
    Outcome,
    QemuMigrator,
    VmLocation,
    VmRecord,
    VmSpec,
    process,
)
from hostrefresh.nodeagent.migrate.handover import incoming_socket
from hostrefresh.nodeagent.migrate.vmm import running_binary
from hostrefresh.nodeagent.qmpsession import qmp_session
from hostrefresh.sim.guest import GuestVerifier
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.guest.qemubuilds import QemuBuild

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

NAMES = ["vm1", "vm2", "vm3"]


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


async def _start(lab: GuestLab, m: QemuMigrator, build: QemuBuild, *, shared: bool = True) -> None:
    for name in NAMES:
        await m.launch(lab.spec(name, shared=shared, qemu=str(build.binary)))
    for name in NAMES:
        await GuestVerifier(m.owner_socket(name), lab.root).wait_dirtied()


async def _assert_on(lab: GuestLab, m: QemuMigrator, build: QemuBuild) -> None:
    """Every guest runs on one QEMU of ``build`` and its memory is intact."""
    view = await m.vmm().view()
    assert view.binaries == dict.fromkeys(NAMES, _real(build.binary)), view
    for record in m.inventory.records():
        holders = [r for r, inst in record.instances.items() if running_binary(inst)]
        assert len(holders) == 1, f"{record.name}: instances running {holders}"
    for name in NAMES:
        await GuestVerifier(m.owner_socket(name), lab.root).assert_ok()


async def test_older_build_to_installed_build_zero_copy(
    qemu_lab: GuestLab, older_qemu: QemuBuild, installed_qemu: QemuBuild
) -> None:
    assert _real(older_qemu.binary) != _real(installed_qemu.binary)
    m = qemu_lab.migrator(MigrationPolicy(parallel=1))  # one VM at a time
    await _start(qemu_lab, m, older_qemu)
    await _assert_on(qemu_lab, m, older_qemu)
    assert await m.vmm().refusals(str(installed_qemu.binary)) == []
    records = await m.vmm().swap(str(installed_qemu.binary))
    assert [(r.outcome, r.path) for r in records] == [(Outcome.MOVED, HandoverPath.ZERO_COPY)] * 3
    for r in records:
        assert r.bytes_transferred is not None and r.bytes_transferred < 1 << 20, "RAM was copied"
        assert r.downtime_ms is not None
    await _assert_on(qemu_lab, m, installed_qemu)
    assert {r.outcome for r in await m.vmm().swap(str(installed_qemu.binary))} <= {Outcome.ALREADY}, (
        "a rerun moves nothing"
    )
    await m.vmm().commit()
    for record in m.inventory.records():
        assert (record.owner, record.spec.qemu, record.target_qemu) == ("source", str(installed_qemu.binary), None)
    assert (await m.vmm().view()).pending == frozenset()


async def test_failure_before_the_last_vm_rolls_back_to_the_older_build(
    qemu_lab: GuestLab, older_qemu: QemuBuild, installed_qemu: QemuBuild
) -> None:
    """The last VM cannot move (its RAM is not shared, copy fallback is off): it stays on its QEMU,
    and the rollback hands the two moved first back to the older build."""
    m = qemu_lab.migrator(MigrationPolicy(parallel=1, copy_fallback=False))
    for name in NAMES:
        await m.launch(qemu_lab.spec(name, shared=name != NAMES[-1], qemu=str(older_qemu.binary)))
    for name in NAMES:
        await GuestVerifier(m.owner_socket(name), qemu_lab.root).wait_dirtied()
    records = await m.vmm().swap(str(installed_qemu.binary))
    assert [r.outcome for r in records] == [Outcome.MOVED, Outcome.MOVED, Outcome.FAILED], records
    view = await m.vmm().view()
    assert view.binaries[NAMES[0]] == _real(installed_qemu.binary), view
    assert view.vms[NAMES[-1]] == VmLocation.SOURCE and view.binaries[NAMES[-1]] == _real(older_qemu.binary), view
    assert "copy fallback is disabled" in (records[-1].error or ""), records[-1]
    back = await m.vmm().restore()
    assert [r.outcome for r in back] == [Outcome.MOVED, Outcome.MOVED, Outcome.ALREADY], back
    await _assert_on(qemu_lab, m, older_qemu)
    assert (await m.vmm().view()).pending == frozenset()
    for record in m.inventory.records():
        assert (record.spec.qemu, record.target_qemu) == (str(older_qemu.binary), None)


async def test_copy_path_when_ram_is_not_shared(
    qemu_lab: GuestLab, older_qemu: QemuBuild, installed_qemu: QemuBuild
) -> None:
    m = qemu_lab.migrator(MigrationPolicy(parallel=3))
    await _start(qemu_lab, m, installed_qemu, shared=False)
    records = await m.vmm().swap(str(older_qemu.binary))
    assert [(r.outcome, r.path) for r in records] == [(Outcome.MOVED, HandoverPath.COPY)] * 3
    await _assert_on(qemu_lab, m, older_qemu)


async def test_a_target_that_cannot_receive_is_refused_before_anything_moves(
    qemu_lab: GuestLab, older_qemu: QemuBuild, tmp_path: Path
) -> None:
    m = qemu_lab.migrator()
    # A VM of the i440FX machine, and Debian's microvm-only build of the same release as the target.
    pcvm = VmSpec(name="pcvm", memory_mib=64, kernel=str(qemu_lab.image), machine="pc", qemu=str(older_qemu.binary))
    m.inventory.save(VmRecord(spec=pcvm))
    microvm_only = older_qemu.binary.with_name("qemu-system-x86_64-microvm")
    problems = await m.vmm().refusals(str(microvm_only))
    assert len(problems) == 1 and problems[0].startswith("pcvm: machine type pc-i440fx-"), problems
    assert "not built into QEMU" in problems[0]
    fake = tmp_path / "qemu-system-x86_64"
    shutil.copy("/bin/true", fake)
    with pytest.raises(ValueError, match="is not a QEMU system emulator"):
        await m.vmm().refusals(str(fake))


async def test_a_destination_a_killed_agent_left_listening_is_used(
    qemu_lab: GuestLab, older_qemu: QemuBuild, installed_qemu: QemuBuild
) -> None:
    """The agent died between telling the destination to listen and starting the migration."""
    m = qemu_lab.migrator()
    await m.launch(qemu_lab.spec("vm1", qemu=str(older_qemu.binary)))
    await GuestVerifier(m.owner_socket("vm1"), qemu_lab.root).wait_dirtied()
    record = replace(m.inventory.load("vm1"), target_qemu=str(installed_qemu.binary))
    dst = await process.launch(record.spec_for("target"), "target", m.run_dir, incoming=True)
    m.inventory.save(record.with_instance(dst))
    async with qmp_session(Path(dst.qmp_socket)) as qmp:  # what the predecessor did before it died
        await qmp.set_capabilities({"x-ignore-shared": True})
        await qmp.execute("migrate-incoming", {"uri": f"unix:{incoming_socket(dst)}"})
    [result] = await m.vmm().swap(str(installed_qemu.binary))
    assert (result.outcome, result.path) == (Outcome.MOVED, HandoverPath.ZERO_COPY), result
    assert "destination was listening already (a predecessor started it)" in result.notes
    assert (await m.vmm().view()).binaries == {"vm1": _real(installed_qemu.binary)}
    await GuestVerifier(m.owner_socket("vm1"), qemu_lab.root).assert_ok()
