"""The verifier's pattern checks on synthetic guest memory (no QEMU)."""

from __future__ import annotations

import struct

from hostrefresh.sim.guest.pattern import (
    CTL_MAGIC,
    PAGE_MAGIC,
    PAGE_SIZE,
    ControlBlock,
    Region,
    check_pages,
    mix,
    sample_ranges,
)

MASK = (1 << 64) - 1


def _page(addr: int, gen: int, seed: int = 0) -> bytes:
    page = bytearray(PAGE_SIZE)
    m = mix(addr, gen, seed)
    struct.pack_into("<4Q", page, 0, PAGE_MAGIC, addr, gen, m)
    struct.pack_into("<Q", page, PAGE_SIZE - 8, ~m & MASK)
    return bytes(page)


def _ctl(progress: int, pages: int = 8, start: int = 0x400000) -> ControlBlock:
    return ControlBlock(
        CTL_MAGIC, 2, progress, pages, progress // pages, 0, 0, (Region(start, start + pages * PAGE_SIZE),)
    )


def test_mix_matches_the_c_formula_on_a_known_value() -> None:
    assert mix(0, 0, 0) == 0
    assert mix(0x400000, 1, 0) == mix(0x400000, 1, 0)  # deterministic
    assert mix(0x400000, 1, 0) != mix(0x400000, 2, 0)


def test_consistent_snapshot_passes_and_damage_is_found() -> None:
    ctl = _ctl(progress=8 + 3)  # generation 2, pages 0..2 done, page 3 in flight
    start = 0x400000
    mem = b"".join(_page(start + i * PAGE_SIZE, 2 if i < 3 else 1) for i in range(8))
    assert ctl.valid and ctl.generation == 2
    assert check_pages(ctl, 0, start, mem) == []
    damaged = bytearray(mem)
    damaged[5 * PAGE_SIZE + 100] ^= 0  # untouched bytes in the middle are not part of the pattern
    damaged[6 * PAGE_SIZE + 24] ^= 1
    errors = check_pages(ctl, 0, start, bytes(damaged))
    assert errors == ["page 6 @ 0x406000: checksum"]
    stale = mem[: 1 * PAGE_SIZE] + _page(start + PAGE_SIZE, 1) + mem[2 * PAGE_SIZE :]
    assert "generation 1" in check_pages(ctl, 0, start, stale)[0]


def test_first_pass_allows_unwritten_pages_and_the_parse_roundtrip() -> None:
    ctl = _ctl(progress=2)
    mem = _page(0x400000, 1) + _page(0x401000, 1) + bytes(PAGE_SIZE * 6)
    assert check_pages(ctl, 0, 0x400000, mem) == []
    raw = struct.pack("<16Q", CTL_MAGIC, 1, 2, 2, 8, 0, 0, 0, 1, *([0] * 7)) + struct.pack("<2Q", 0x400000, 0x408000)
    assert ControlBlock.parse(raw.ljust(640, b"\0")) == ctl


def test_sample_ranges_spread_over_the_regions() -> None:
    ctl = ControlBlock(CTL_MAGIC, 2, 0, 2048, 0, 0, 0, (Region(0x400000, 0x400000 + (8 << 20)),))
    assert len(sample_ranges(ctl, None)) == 8
    picked = sample_ranges(ctl, 2 << 20)
    assert [r[0] for r in picked] == [0, 1024]
