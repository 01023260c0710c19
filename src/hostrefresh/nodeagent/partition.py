"""Pure selection of the CPUs and memory blocks that form the second partition.

No I/O here so the policy (never CPU0, highest CPUs first, movable memory first) is unit-testable on
plain values; `partitioner` observes sysfs, asks these functions, and executes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class PartitionError(RuntimeError):
    """The requested partition cannot be formed (not enough offlinable CPUs or memory)."""


@dataclass(frozen=True)
class Cpu:
    index: int
    online: bool
    hotpluggable: bool  # has an `online` file (CPU0 usually has none)


@dataclass(frozen=True)
class MemoryBlock:
    index: int
    online: bool
    zones: tuple[str, ...]  # valid_zones split

    @property
    def movable(self) -> bool:
        """Online in ZONE_MOVABLE (offlining is expected to succeed), or may be onlined there."""
        return "Movable" in self.zones


@dataclass(frozen=True)
class HostResources:
    """Observed CPU and memory-block state of a host."""

    cpus: tuple[Cpu, ...]
    blocks: tuple[MemoryBlock, ...]
    block_size: int

    def offline_cpus(self) -> list[int]:
        return [c.index for c in self.cpus if not c.online]

    def offline_blocks(self) -> list[int]:
        return [b.index for b in self.blocks if not b.online]


def blocks_needed(memory_bytes: int, block_size: int) -> int:
    """Whole memory blocks covering `memory_bytes` (rounded up)."""
    if block_size <= 0:
        raise ValueError("block size must be positive")
    return -(-memory_bytes // block_size)


def cpu_candidates(cpus: Iterable[Cpu], exclude: Iterable[int] = ()) -> list[int]:
    """Online hot-pluggable CPUs other than CPU0, highest index first (CPU0 is never offered)."""
    skip = set(exclude)
    return sorted(
        (c.index for c in cpus if c.online and c.hotpluggable and c.index != 0 and c.index not in skip),
        reverse=True,
    )


def memory_candidates(
    blocks: Iterable[MemoryBlock], *, movable_only: bool = False, exclude: Iterable[int] = ()
) -> list[int]:
    """Online blocks to try, movable ones first, each group highest address first."""
    skip = set(exclude)
    online = [b for b in blocks if b.online and b.index not in skip]
    movable = sorted((b.index for b in online if b.movable), reverse=True)
    if movable_only:
        return movable
    other = sorted((b.index for b in online if not b.movable), reverse=True)
    return movable + other


def check_feasible(
    res: HostResources, cpus: int, memory_bytes: int, *, have_cpus: int = 0, have_blocks: int = 0
) -> None:
    """Raise PartitionError early if the host cannot give `cpus` and `memory_bytes` even if every
    candidate succeeds (`have_*`: already in the partition)."""
    can_cpus = have_cpus + len(cpu_candidates(res.cpus))
    if cpus > can_cpus:
        raise PartitionError(f"need {cpus} CPUs, only {can_cpus} can be taken (never CPU0)")
    need = blocks_needed(memory_bytes, res.block_size) if memory_bytes else 0
    can_blocks = have_blocks + len(memory_candidates(res.blocks))
    if need > can_blocks:
        raise PartitionError(f"need {need} memory blocks, only {can_blocks} can be taken")


#: Memory the old host keeps for itself (kernel, agent, QEMU processes) besides its VMs' RAM.
HOST_RESERVE_BYTES = 512 << 20


def check_headroom(res: HostResources, memory_bytes: int, keep_bytes: int) -> None:
    """Raise PartitionError if taking ``memory_bytes`` would leave the old host less than ``keep_bytes``
    online (its VMs' RAM and its own reserve): they keep running there until they are handed over."""
    online = sum(1 for b in res.blocks if b.online)
    take = blocks_needed(memory_bytes, res.block_size) if memory_bytes else 0
    keep = blocks_needed(keep_bytes, res.block_size)
    if online - take < keep:
        most = max(0, online - keep) * res.block_size
        raise PartitionError(
            f"spec.partition.memory: taking {take * res.block_size >> 20} MiB would leave the old host "
            f"{(online - take) * res.block_size >> 20} MiB for {keep_bytes >> 20} MiB (its VMs' RAM and a "
            f"{HOST_RESERVE_BYTES >> 20} MiB reserve): ask for at most {most >> 20}Mi"
        )


def online_value(block: MemoryBlock, prefer_movable: bool = True) -> str:
    """What to write to an offline block's `state` to put it back (movable when allowed)."""
    return "online_movable" if prefer_movable and block.movable else "online"


def parse_zones(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def parse_block_size(text: str) -> int:
    """`block_size_bytes` is hexadecimal without a 0x prefix."""
    return int(text.strip(), 16)


def summarize(indices: Sequence[int]) -> str:
    return ",".join(str(i) for i in sorted(indices)) or "-"
