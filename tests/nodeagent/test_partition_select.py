"""Pure partition selection: never CPU0, movable memory first, feasibility before touching sysfs."""

from __future__ import annotations

import pytest

from hostrefresh.nodeagent.partition import (
    Cpu,
    HostResources,
    MemoryBlock,
    PartitionError,
    blocks_needed,
    check_feasible,
    check_headroom,
    cpu_candidates,
    memory_candidates,
    online_value,
    parse_block_size,
)


def _cpus(n: int, offline: tuple[int, ...] = ()) -> tuple[Cpu, ...]:
    return tuple(Cpu(i, i not in offline, i != 0) for i in range(n))


def _blocks(zones: list[str], offline: tuple[int, ...] = ()) -> tuple[MemoryBlock, ...]:
    return tuple(MemoryBlock(i, i not in offline, (z,)) for i, z in enumerate(zones))


def test_cpu0_is_never_a_candidate_even_with_an_online_file() -> None:
    cpus = (Cpu(0, True, True), Cpu(1, True, True), Cpu(2, True, True))
    assert cpu_candidates(cpus) == [2, 1]


def test_cpu_candidates_skip_offline_and_excluded() -> None:
    assert cpu_candidates(_cpus(6, offline=(5,)), exclude=[3]) == [4, 2, 1]


def test_memory_candidates_prefer_movable_highest_first() -> None:
    blocks = _blocks(["Normal", "Normal", "Movable", "Normal", "Movable"], offline=(4,))
    assert memory_candidates(blocks) == [2, 3, 1, 0]
    assert memory_candidates(blocks, movable_only=True) == [2]


def test_blocks_needed_rounds_up_and_block_size_is_hex() -> None:
    assert parse_block_size("8000000\n") == 128 << 20
    assert blocks_needed(1, 128 << 20) == 1
    assert blocks_needed(256 << 20, 128 << 20) == 2
    assert blocks_needed(0, 128 << 20) == 0


def test_feasibility_counts_already_taken() -> None:
    res = HostResources(_cpus(3), _blocks(["Movable"] * 2), 128 << 20)
    check_feasible(res, 2, 256 << 20)
    with pytest.raises(PartitionError, match="CPUs"):
        check_feasible(res, 3, 0)
    with pytest.raises(PartitionError, match="memory blocks"):
        check_feasible(res, 0, 384 << 20)
    check_feasible(res, 3, 384 << 20, have_cpus=1, have_blocks=1)


def test_online_value_goes_back_to_movable_when_allowed() -> None:
    assert online_value(MemoryBlock(1, False, ("Normal", "Movable"))) == "online_movable"
    assert online_value(MemoryBlock(1, False, ("Normal",))) == "online"


def test_headroom_leaves_the_old_host_its_vms_ram_and_a_reserve() -> None:
    mib = 1 << 20
    res = HostResources(_cpus(4), _blocks(["Movable"] * 30 + ["Normal"] * 2, offline=(5,)), 128 * mib)  # 31 online
    check_headroom(res, 20 * 128 * mib, 11 * 128 * mib)  # 31 - 20 = 11 kept: just enough
    with pytest.raises(PartitionError, match=r"spec\.partition\.memory: .* ask for at most 2560Mi"):
        check_headroom(res, 21 * 128 * mib, 11 * 128 * mib)
    with pytest.raises(PartitionError, match="ask for at most 0Mi"):
        check_headroom(res, 128 * mib, 40 * 128 * mib)
