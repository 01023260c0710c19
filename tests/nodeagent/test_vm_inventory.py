"""Inventory records round-trip, and placement is derived from observations (no QEMU needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostrefresh.nodeagent.migrate import Instance, Inventory, VmLocation, VmRecord, VmSpec
from hostrefresh.nodeagent.migrate.observe import InstanceState, location


def _inst(role: str, pid: int) -> Instance:
    return Instance(role, pid, f"/run/{role}.qmp", f"/run/{role}.aux", "/run/log", 1.0, 40.0)  # type: ignore[arg-type]


def test_records_round_trip_and_are_listed(tmp_path: Path) -> None:
    inv = Inventory(tmp_path)
    spec = VmSpec("vm1", 64, "/img", mem_path="/dev/shm/vm1.ram")
    record = VmRecord(spec, "source", {"source": _inst("source", 10)}).with_instance(_inst("target", 11))
    inv.save(record)
    inv.save(record)  # idempotent overwrite
    assert inv.names() == ["vm1"]
    assert inv.load("vm1") == record
    assert inv.load("vm1").without_instance("source").instances.keys() == {"target"}
    assert not list((tmp_path / "vms").glob(".*.tmp")), "no temp files left behind"
    inv.delete("vm1")
    inv.delete("vm1")
    assert inv.get("vm1") is None
    with pytest.raises(ValueError):
        inv.save(VmRecord(VmSpec("../x", 64, "/img")))


RUNNING = InstanceState(True, "running", "none")
POSTMIGRATE = InstanceState(True, "postmigrate", "completed")
INMIGRATE = InstanceState(True, "inmigrate", "none")
GONE = InstanceState()


@pytest.mark.parametrize(
    ("source", "target", "owner", "expected"),
    [
        (RUNNING, GONE, "source", VmLocation.SOURCE),
        (RUNNING, INMIGRATE, "source", VmLocation.SOURCE),  # prepared target, not moved yet
        (InstanceState(True, "running", "active"), INMIGRATE, "source", VmLocation.SOURCE),
        (InstanceState(True, "finish-migrate", "device"), INMIGRATE, "source", VmLocation.MIGRATING),
        (POSTMIGRATE, INMIGRATE, "source", VmLocation.MIGRATING),  # switched over, target loading
        (POSTMIGRATE, RUNNING, "source", VmLocation.TARGET),  # crash before the record was updated
        (GONE, RUNNING, "target", VmLocation.TARGET),
        (GONE, GONE, "source", VmLocation.LOST),
    ],
)
def test_location_from_observations(
    source: InstanceState, target: InstanceState, owner: str, expected: VmLocation
) -> None:
    assert location({"source": source, "target": target}, owner) is expected  # type: ignore[arg-type]


def test_records_keep_the_shape_older_agents_read() -> None:
    """``qemu`` is written only when set, and keys a newer agent added are ignored."""
    plain = VmSpec("vm1", 64, "/img")
    assert "qemu" not in plain.to_dict()
    moved = VmSpec("vm1", 64, "/img", qemu="/images/qemu/bin/qemu-system-x86_64")
    assert VmSpec.from_dict(moved.to_dict()) == moved
    assert VmSpec.from_dict({**plain.to_dict(), "fromTheFuture": 1}) == plain
