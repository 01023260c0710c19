"""The test guest's memory layout and pattern checks (pure; mirrors guest/guest.c).

Kept free of I/O so the checks are unit-testable on synthetic bytes and reusable by any reader.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONTROL_ADDR = 0x101000
CTL_MAGIC = 0x31304C5443524855
PAGE_MAGIC = 0x3130454741505248
PAGE_SIZE = 4096
MAX_REGIONS = 32
CONTROL_SIZE = 16 * 8 + MAX_REGIONS * 16
STATE_RUNNING = 2
_MASK = (1 << 64) - 1
_HEADER = struct.Struct("<4Q")
_TRAILER_OFFSET = PAGE_SIZE - 8


def mix(addr: int, gen: int, seed: int) -> int:
    """Per-page check word; the same arithmetic as `mix()` in guest.c (64-bit wraparound)."""
    m = ((addr ^ seed) * 0x9E3779B97F4A7C15) & _MASK
    m ^= (gen * 0xC2B2AE3D27D4EB4F) & _MASK
    m ^= m >> 29
    return m


@dataclass(frozen=True)
class Region:
    """A covered guest-physical range [start, end), page aligned."""

    start: int
    end: int

    @property
    def pages(self) -> int:
        return (self.end - self.start) // PAGE_SIZE


@dataclass(frozen=True)
class ControlBlock:
    """The guest's control block at CONTROL_ADDR."""

    magic: int
    state: int
    progress: int
    page_count: int
    passes_completed: int
    pace: int
    seed: int
    regions: tuple[Region, ...]

    @classmethod
    def parse(cls, data: bytes) -> ControlBlock:
        words = struct.unpack_from("<16Q", data)
        count = min(words[8], MAX_REGIONS)
        regions = tuple(Region(*struct.unpack_from("<2Q", data, 16 * 8 + i * 16)) for i in range(count))
        return cls(
            magic=words[0],
            state=words[2],
            progress=words[3],
            page_count=words[4],
            passes_completed=words[5],
            pace=words[6],
            seed=words[7],
            regions=regions,
        )

    @property
    def valid(self) -> bool:
        """Magic present, running, and the regions add up to page_count."""
        return (
            self.magic == CTL_MAGIC
            and self.state == STATE_RUNNING
            and self.page_count > 0
            and sum(r.pages for r in self.regions) == self.page_count
        )

    @property
    def generation(self) -> int:
        """Generation of the pass in progress (1-based)."""
        return self.progress // self.page_count + 1

    def expected_generations(self, index: int) -> tuple[int, ...]:
        """Generations page number `index` may hold in a paused guest."""
        gen = self.generation
        done = self.progress % self.page_count
        if index < done:
            return (gen,)
        if index == done:
            return (gen, gen - 1)  # in flight: written, counter not yet bumped (or torn)
        return (gen - 1,)


@dataclass
class PatternReport:
    """Outcome of one verification: proofs of life and of intact memory."""

    control: ControlBlock | None = None
    progress_before: int = 0
    progress_after: int = 0
    pages_checked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def advancing(self) -> bool:
        return self.progress_after > self.progress_before

    @property
    def ok(self) -> bool:
        return self.control is not None and self.control.valid and self.advancing and not self.errors


def check_pages(ctl: ControlBlock, first_index: int, addr: int, data: bytes, max_errors: int = 10) -> list[str]:
    """Check the pages in `data` (guest memory from `addr`, page numbers from `first_index`)."""
    errors: list[str] = []
    for off in range(0, len(data) - PAGE_SIZE + 1, PAGE_SIZE):
        index = first_index + off // PAGE_SIZE
        page_addr = addr + off
        magic, got_addr, gen, check = _HEADER.unpack_from(data, off)
        (trailer,) = struct.unpack_from("<Q", data, off + _TRAILER_OFFSET)
        allowed = ctl.expected_generations(index)
        if len(allowed) > 1:
            continue  # the page the paused vCPU was writing: may be torn between two generations
        if gen == 0 and 0 in allowed and magic == 0 and got_addr == 0:
            continue  # never written yet (first pass still running)
        problem = ""
        if magic != PAGE_MAGIC:
            problem = f"magic {magic:#x}"
        elif got_addr != page_addr:
            problem = f"address {got_addr:#x}"
        elif gen not in allowed:
            problem = f"generation {gen} not in {allowed}"
        elif check != mix(page_addr, gen, ctl.seed) or trailer != (~check & _MASK):
            problem = "checksum"
        if problem:
            errors.append(f"page {index} @ {page_addr:#x}: {problem}")
            if len(errors) >= max_errors:
                break
    return errors


def sample_ranges(ctl: ControlBlock, max_bytes: int | None, chunk: int = 1 << 20) -> list[tuple[int, int, int]]:
    """(first page index, address, size) ranges to check: everything, or evenly spread chunks."""
    ranges: list[tuple[int, int, int]] = []
    index = 0
    for region in ctl.regions:
        addr = region.start
        while addr < region.end:
            size = min(chunk, region.end - addr)
            ranges.append((index + (addr - region.start) // PAGE_SIZE, addr, size))
            addr += size
        index += region.pages
    if max_bytes is None or sum(r[2] for r in ranges) <= max_bytes:
        return ranges
    keep = max(1, max_bytes // chunk)
    step = len(ranges) / keep
    return [ranges[int(i * step)] for i in range(keep)]
