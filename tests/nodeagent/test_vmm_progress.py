"""Where a VMM-only refresh stands, from observed placement and binaries only (pure functions)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hostrefresh.api import Phase
from hostrefresh.nodeagent.migrate import VmLocation
from hostrefresh.nodeagent.migrate.process import Instance
from hostrefresh.nodeagent.migrate.vmm import running_binary, same_binary
from hostrefresh.nodeagent.progress import (
    VmmObservation,
    vmm_can_still_roll_back,
    vmm_forward_position,
    vmm_rollback_done,
)

OLD, NEW = "/usr/bin/qemu-system-x86_64", "/var/lib/hostrefresh/images/qemu-new/bin/qemu-system-x86_64"
S, T, M, L = VmLocation.SOURCE, VmLocation.TARGET, VmLocation.MIGRATING, VmLocation.LOST


def obs(
    vms: dict[str, tuple[VmLocation, str]], pending: set[str] | None = None, unsettled: set[str] | None = None
) -> VmmObservation:
    return VmmObservation(
        vms={n: loc for n, (loc, _) in vms.items()},
        binaries={n: b for n, (_, b) in vms.items()},
        pending=frozenset(pending or set()),
        target=NEW,
        settled=frozenset(n for n, (loc, _) in vms.items() if loc in (S, T) and n not in (unsettled or set())),
    )


@pytest.mark.parametrize(
    ("vms", "pending", "position", "can_roll_back", "rolled_back"),
    [
        # nothing moved yet: Preflight (the agent's report says when it has passed)
        ({"a": (S, OLD), "b": (S, OLD)}, set(), Phase.PREFLIGHT, True, True),
        # the move of every VM recorded, none moved: Migrating
        ({"a": (S, OLD), "b": (S, OLD)}, {"a", "b"}, Phase.MIGRATING, True, False),
        # one moved, one migrating: Migrating
        ({"a": (T, NEW), "b": (M, "")}, {"a", "b"}, Phase.MIGRATING, True, False),
        # all moved, not yet the VMs' own: Verifying, and still undoable
        ({"a": (T, NEW), "b": (T, NEW)}, {"a", "b"}, Phase.VERIFYING, True, False),
        # committed: the new binary is each VM's own; nothing left to undo
        ({"a": (S, NEW), "b": (S, NEW)}, set(), Phase.VERIFYING, False, True),
        # a VM that started on the old QEMU during the refresh goes back to Migrating
        ({"a": (T, NEW), "c": (S, OLD)}, {"a"}, Phase.MIGRATING, True, False),
        # a lost VM is never on the target
        ({"a": (T, NEW), "b": (L, "")}, {"a", "b"}, Phase.MIGRATING, True, False),
        # no VMs at all: nothing to move, nothing to undo
        ({}, set(), Phase.VERIFYING, True, True),
    ],
)
def test_positions(
    vms: dict[str, tuple[VmLocation, str]], pending: set[str], position: Phase, can_roll_back: bool, rolled_back: bool
) -> None:
    o = obs(vms, pending)
    assert vmm_forward_position(o) == position
    assert vmm_can_still_roll_back(o) is can_roll_back
    assert vmm_rollback_done(o) is rolled_back


def test_a_symlink_to_the_target_counts_as_the_target() -> None:
    o = VmmObservation({"a": S}, {"a": "/bin/../bin/true"}, frozenset(), "/bin/true", frozenset({"a"}))
    assert o.on_target("a")


def test_a_move_left_unrecorded_by_a_crash_is_not_done() -> None:
    """The new QEMU runs the guest, but the record still lists the old one (it lingers, paused)."""
    o = obs({"a": (T, NEW), "b": (T, NEW)}, {"a", "b"}, unsettled={"b"})
    assert not o.on_target("b")
    assert vmm_forward_position(o) == Phase.MIGRATING


def test_a_binary_replaced_since_its_qemu_started_is_not_the_target(tmp_path: Path) -> None:
    """/proc/<pid>/exe of a QEMU whose file was replaced reads '<path> (deleted)': not the new file."""
    target = tmp_path / "qemu-system-x86_64"
    target.write_bytes(b"new build")
    assert same_binary(str(target), str(target))
    assert not same_binary(f"{target} (deleted)", str(target))
    o = VmmObservation({"a": S}, {"a": f"{target} (deleted)"}, frozenset(), str(target), frozenset({"a"}))
    assert not o.on_target("a") and vmm_forward_position(o) == Phase.PREFLIGHT


def test_a_process_whose_binary_was_replaced_does_not_run_the_new_file(tmp_path: Path) -> None:
    binary = tmp_path / "qemu-system-x86_64"
    shutil.copy2("/bin/sleep", binary)
    proc = subprocess.Popen([str(binary), "30"])
    try:
        inst = Instance("source", proc.pid, str(binary), "", "", 0.0, 0.0)  # its command line names the path
        assert same_binary(running_binary(inst), str(binary))
        fresh = tmp_path / "fresh"
        shutil.copy2("/bin/sleep", fresh)
        os.replace(fresh, binary)  # a new build moved over the old one
        assert running_binary(inst).endswith(" (deleted)")
        assert not same_binary(running_binary(inst), str(binary))
    finally:
        proc.kill()
        proc.wait()
