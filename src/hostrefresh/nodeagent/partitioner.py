"""Take CPUs and memory away from the running L1 (sysfs hot-unplug) and give them back.

Every write runs under a timeout (a kernel offline can hang); EBUSY or a timeout moves on to the next
candidate; if the request cannot be met, everything this call took is put back before raising.
State is observed from sysfs on every call, so `take` and `give_back` are idempotent and an agent
restarted after a crash resumes from what the kernel reports.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from hostrefresh.nodeagent.partition import (
    Cpu,
    HostResources,
    MemoryBlock,
    PartitionError,
    blocks_needed,
    check_feasible,
    cpu_candidates,
    memory_candidates,
    online_value,
    parse_block_size,
    parse_zones,
    summarize,
)
from hostrefresh.nodeagent.sysfs import CPU_DIR, MEMORY_DIR, SysfsIO, SysfsTimeoutError, run_with_timeout


@dataclass
class PartitionResult:
    """What is offline (the partition) after a call, and what went wrong on the way."""

    cpus: list[int] = field(default_factory=list)
    memory_blocks: list[int] = field(default_factory=list)
    block_size: int = 0
    failures: list[str] = field(default_factory=list)  # "memory7: EBUSY", "cpu3: timeout", ...

    @property
    def memory_bytes(self) -> int:
        return len(self.memory_blocks) * self.block_size


@dataclass(frozen=True)
class Baseline:
    """CPUs/blocks that were offline before the refresh and must stay so on give_back."""

    cpus: frozenset[int] = frozenset()
    memory_blocks: frozenset[int] = frozenset()


class Partitioner:
    """Executes partitioning through a `SysfsIO` (real kernel or fake tree)."""

    def __init__(self, io: SysfsIO, *, timeout_s: float = 30.0, movable_only: bool = False) -> None:
        self.io = io
        self.timeout_s = timeout_s
        self.movable_only = movable_only
        self._pending: set[str] = set()

    # -- observation --

    def observe(self, *, zones: bool = True) -> HostResources:
        """CPU and memory-block state from sysfs; ``zones=False`` skips each block's valid_zones
        (a third of the reads on a host with thousands of blocks) when only online/offline matters."""
        cpus: list[Cpu] = []
        for name in self.io.listdir(CPU_DIR):
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            online_file = f"{CPU_DIR}/{name}/online"
            hotpluggable = self.io.exists(online_file)
            online = self.io.read(online_file) == "1" if hotpluggable else True
            cpus.append(Cpu(int(name[3:]), online, hotpluggable))
        blocks: list[MemoryBlock] = []
        for name in self.io.listdir(MEMORY_DIR):
            if not (name.startswith("memory") and name[6:].isdigit()):
                continue
            state = self.io.read(f"{MEMORY_DIR}/{name}/state")
            zones_file = f"{MEMORY_DIR}/{name}/valid_zones"
            valid = parse_zones(self.io.read(zones_file)) if zones and self.io.exists(zones_file) else ()
            blocks.append(MemoryBlock(int(name[6:]), state != "offline", valid))
        size_file = f"{MEMORY_DIR}/block_size_bytes"
        size = parse_block_size(self.io.read(size_file)) if self.io.exists(size_file) else 0
        return HostResources(
            tuple(sorted(cpus, key=lambda c: c.index)), tuple(sorted(blocks, key=lambda b: b.index)), size
        )

    def offline_now(self, baseline: Baseline | None = None) -> PartitionResult:
        """What is offline now, minus the baseline: the partition as the kernel sees it."""
        return _partition_of(self.observe(zones=False), baseline or Baseline())

    # -- actions --

    @property
    def pending(self) -> set[str]:
        """Paths whose write timed out and is still in the kernel (an offline may yet complete)."""
        return set(self._pending)

    async def _write(self, path: str, value: str, label: str, failures: list[str]) -> bool:
        if path in self._pending:  # never a second write into one the kernel has not finished
            failures.append(f"{label}: an earlier write is still pending in the kernel")
            return False
        try:
            await run_with_timeout(
                lambda: self.io.write(path, value), self.timeout_s, on_late=lambda: self._pending.discard(path)
            )
        except SysfsTimeoutError:
            self._pending.add(path)
            failures.append(f"{label}: timeout after {self.timeout_s}s (still pending in the kernel)")
            return False
        except OSError as exc:
            failures.append(f"{label}: {errno.errorcode.get(exc.errno or 0, str(exc.errno))}")
            return False
        return True

    async def take(self, cpus: int, memory_bytes: int, baseline: Baseline | None = None) -> PartitionResult:
        """Offline CPUs and memory until the partition (offline minus baseline) holds the request.

        Already-offline resources count, so a second call (or a call after a crash) takes nothing more.
        Raises PartitionError after putting back what this call took if the request cannot be met.
        """
        base = baseline or Baseline()
        res = self.observe()
        current = _partition_of(res, base)
        check_feasible(res, cpus, memory_bytes, have_cpus=len(current.cpus), have_blocks=len(current.memory_blocks))
        failures: list[str] = []
        taken_cpus: list[int] = []
        taken_blocks: list[int] = []
        for cpu in cpu_candidates(res.cpus, exclude=base.cpus):
            if len(current.cpus) + len(taken_cpus) >= cpus:
                break
            if await self._write(f"{CPU_DIR}/cpu{cpu}/online", "0", f"cpu{cpu}", failures):
                taken_cpus.append(cpu)
        need = blocks_needed(memory_bytes, res.block_size) if memory_bytes else 0
        for block in memory_candidates(res.blocks, movable_only=self.movable_only, exclude=base.memory_blocks):
            if len(current.memory_blocks) + len(taken_blocks) >= need:
                break
            path = f"{MEMORY_DIR}/memory{block}/state"
            if await self._write(path, "offline", f"memory{block}", failures):
                taken_blocks.append(block)
        short_cpus = len(current.cpus) + len(taken_cpus) < cpus
        short_mem = len(current.memory_blocks) + len(taken_blocks) < need
        if short_cpus or short_mem:
            undo = await self.give_back(cpus=taken_cpus, memory_blocks=taken_blocks)
            raise PartitionError(
                f"partition short (cpus {summarize(taken_cpus)}, blocks {summarize(taken_blocks)} put back; "
                f"still offline: cpus {summarize(undo.cpus)}, blocks {summarize(undo.memory_blocks)}): "
                + "; ".join(failures)
            )
        result = self.offline_now(base)
        result.failures = failures
        return result

    async def give_back(
        self,
        *,
        cpus: list[int] | None = None,
        memory_blocks: list[int] | None = None,
        baseline: Baseline | None = None,
    ) -> PartitionResult:
        """Online the given CPUs/blocks (default: everything offline except the baseline).

        Memory goes back first (the L1 needs it more than CPUs), into ZONE_MOVABLE where allowed so the
        next refresh can take it again. Returns what is still offline (failures listed).
        """
        base = baseline or Baseline()
        res = self.observe()
        want_blocks = set(res.offline_blocks() if memory_blocks is None else memory_blocks) - base.memory_blocks
        want_cpus = set(res.offline_cpus() if cpus is None else cpus) - base.cpus
        failures: list[str] = []
        for block in res.blocks:
            if block.index in want_blocks and not block.online:
                path = f"{MEMORY_DIR}/memory{block.index}/state"
                value = online_value(block)
                ok = await self._write(path, value, f"memory{block.index}", failures)
                if not ok and value != "online":
                    await self._write(path, "online", f"memory{block.index}", failures)
        for cpu in res.cpus:
            if cpu.index in want_cpus and not cpu.online:
                await self._write(f"{CPU_DIR}/cpu{cpu.index}/online", "1", f"cpu{cpu.index}", failures)
        left = self.offline_now(base)
        left.cpus = [c for c in left.cpus if c in want_cpus]
        left.memory_blocks = [b for b in left.memory_blocks if b in want_blocks]
        left.failures = failures
        return left


def _partition_of(res: HostResources, base: Baseline) -> PartitionResult:
    """What ``res`` shows offline, minus the baseline."""
    return PartitionResult(
        cpus=[c for c in res.offline_cpus() if c not in base.cpus],
        memory_blocks=[b for b in res.offline_blocks() if b not in base.memory_blocks],
        block_size=res.block_size,
    )
