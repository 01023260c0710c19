"""The partitioner against a fake sysfs that behaves like the kernel (EPERM, EBUSY, hangs)."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest

from hostrefresh.nodeagent.partition import PartitionError
from hostrefresh.nodeagent.partitioner import Baseline, Partitioner
from hostrefresh.sim.sysfs import (
    FakeSysfsIO,
    build_fake_sysfs,
    cpu_online_path,
    load_rules,
    memory_state_path,
    save_rules,
)

MiB = 1 << 20


def _rules(root: Path, **changes: object) -> None:
    rules = load_rules(root)
    for key, value in changes.items():
        setattr(rules, key, value)
    save_rules(root, rules)


def test_fake_kernel_semantics(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    root, io = fake_sysfs
    assert not io.exists(cpu_online_path(0)), "CPU0 has no online file, like x86 kernels"
    (root / cpu_online_path(0)).write_text("1\n")  # kernels with BOOTPARAM_HOTPLUG_CPU0 have one...
    _rules(root, refuse=[cpu_online_path(0)])
    with pytest.raises(OSError) as refused:
        io.write(cpu_online_path(0), "0")
    assert refused.value.errno == errno.EPERM  # ...which the fake refuses
    _rules(root, ebusy=[memory_state_path(3)])
    with pytest.raises(OSError) as busy:
        io.write(memory_state_path(3), "offline")
    assert busy.value.errno == errno.EBUSY
    io.write(memory_state_path(9), "offline")
    assert io.read(f"{memory_state_path(9)[:-6]}/valid_zones") == "Normal Movable"
    with pytest.raises(OSError) as again:
        io.write(memory_state_path(9), "offline")
    assert again.value.errno == errno.EINVAL, "offlining an offline block is EINVAL in the kernel"
    io.write(cpu_online_path(2), "0")
    io.write(cpu_online_path(2), "0")  # CPUs accept a repeated offline


def test_fake_writes_leave_exactly_the_new_value(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    """Values are rewritten in place (no truncation to zero): a shorter one leaves no tail behind."""
    root, io = fake_sysfs
    state, zones = root / memory_state_path(9), root / memory_state_path(9)[:-6] / "valid_zones"
    io.write(memory_state_path(9), "offline")
    assert (state.read_text(), zones.read_text()) == ("offline\n", "Normal Movable\n")
    io.write(memory_state_path(9), "online_movable")
    assert (state.read_text(), zones.read_text()) == ("online\n", "Movable\n")
    io.write(memory_state_path(2), "offline")
    io.write(memory_state_path(2), "online")
    assert (root / memory_state_path(2)).read_text() == "online\n"
    assert (root / memory_state_path(2)[:-6] / "valid_zones").read_text() == "Normal\n"


def test_observe_without_zones_reads_the_same_states(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    _, io = fake_sysfs
    io.write(memory_state_path(9), "offline")
    io.write(cpu_online_path(3), "0")
    part = Partitioner(io)
    full, states = part.observe(), part.observe(zones=False)
    assert [(b.index, b.online) for b in full.blocks] == [(b.index, b.online) for b in states.blocks]
    assert full.cpus == states.cpus and full.block_size == states.block_size
    assert all(b.zones == () for b in states.blocks) and any(b.zones for b in full.blocks)
    assert part.offline_now().memory_blocks == [9] and part.offline_now().cpus == [3]


async def test_take_never_touches_cpu0_and_prefers_movable(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    _, io = fake_sysfs
    part = Partitioner(io, timeout_s=1.0)
    result = await part.take(cpus=3, memory_bytes=512 * MiB)
    assert sorted(result.cpus) == [1, 2, 3]
    assert sorted(result.memory_blocks) == [12, 13, 14, 15]  # movable blocks 8..15, highest first
    assert result.memory_bytes == 512 * MiB
    with pytest.raises(PartitionError, match="CPU0"):
        await part.take(cpus=4, memory_bytes=0)


async def test_take_is_idempotent_and_give_back_restores(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    _, io = fake_sysfs
    part = Partitioner(io, timeout_s=1.0)
    first = await part.take(cpus=1, memory_bytes=256 * MiB)
    second = await part.take(cpus=1, memory_bytes=256 * MiB)
    assert (first.cpus, first.memory_blocks) == (second.cpus, second.memory_blocks)
    assert part.offline_now().cpus == first.cpus
    back = await part.give_back()
    assert back.cpus == [] and back.memory_blocks == [] and back.failures == []
    again = await part.give_back()
    assert again.failures == []
    res = part.observe()
    assert all(c.online for c in res.cpus) and all(b.online for b in res.blocks)
    assert all(b.zones == ("Movable",) for b in res.blocks if b.index >= 8), "movable blocks go back movable"


async def test_ebusy_moves_on_to_other_blocks(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    root, io = fake_sysfs
    _rules(root, ebusy=[memory_state_path(15), memory_state_path(14)])
    result = await Partitioner(io, timeout_s=1.0).take(cpus=0, memory_bytes=256 * MiB)
    assert sorted(result.memory_blocks) == [12, 13]
    assert any("memory15: EBUSY" in f for f in result.failures)


async def test_hang_times_out_and_partial_is_rolled_back(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    root, io = fake_sysfs
    # Only three movable blocks; the third one hangs and every normal block is busy -> cannot succeed.
    build_fake_sysfs(root, cpus=4, memory_blocks=6, movable_blocks=[3, 4, 5])
    _rules(
        root,
        hang=[memory_state_path(3)],
        ebusy=[memory_state_path(i) for i in range(3)],
    )
    for extra in range(6, 16):
        (root / memory_state_path(extra)).parent.rename(root / f"gone{extra}")
    part = Partitioner(io, timeout_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(PartitionError, match="timeout") as err:
        await part.take(cpus=2, memory_bytes=3 * 128 * MiB)
    assert time.monotonic() - t0 < 5, "the hanging write must not block the agent"
    assert "put back" in str(err.value)
    offline = part.offline_now()
    assert offline.cpus == [] and offline.memory_blocks == [], "everything taken was put back"


async def test_baseline_stays_offline(fake_sysfs: tuple[Path, FakeSysfsIO]) -> None:
    _, io = fake_sysfs
    io.write(cpu_online_path(3), "0")  # offline before the refresh, e.g. by an administrator
    part = Partitioner(io, timeout_s=1.0)
    base = Baseline(cpus=frozenset(part.observe().offline_cpus()))
    result = await part.take(cpus=1, memory_bytes=0, baseline=base)
    assert result.cpus == [2]
    await part.give_back(baseline=base)
    assert part.observe().offline_cpus() == [3]
