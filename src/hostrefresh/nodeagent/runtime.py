"""A node's local mechanisms bundled for the agent: its L0, its sysfs, its VMs, its state dir.

One ``NodeRuntime`` per node. A real node has one (the real L0, the kernel's sysfs, QEMU VMs); a
simulated node gets a simulated L0 state file, a fake sysfs tree and a QEMU or simulated migrator,
so a thousand of them fit in one process.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hostrefresh.api import TargetHost
from hostrefresh.l0 import L0, Image, MemRange
from hostrefresh.nodeagent.images import ImageRefusedError, ImageStore
from hostrefresh.nodeagent.migrate import Migrator
from hostrefresh.nodeagent.migrate.channel import HandoverChannel
from hostrefresh.nodeagent.migrate.twohost import HostMigrator
from hostrefresh.nodeagent.partitioner import Baseline, Partitioner
from hostrefresh.nodeagent.progress import Observation
from hostrefresh.nodeagent.sysfs import SysfsIO
from hostrefresh.nodeagent.timing import timed


class PreflightError(RuntimeError):
    """The node cannot be refreshed as asked; nothing was changed."""


@dataclass
class NodeRuntime:
    """Everything node-local the steps act on."""

    node: str
    l0: L0
    partitioner: Partitioner
    migrator: Migrator
    state_dir: Path  # survives agent restarts and L1 switchover (node-local, like /var/lib)
    l1_id: int | None = None  # the host this agent runs in (two-host node); None: one agent for both
    images: ImageStore = field(default_factory=ImageStore)  # where target images may come from, how large

    async def primary(self) -> bool:
        """Whether this agent drives its node: its host is the oldest running L1 (or it is the only agent).

        Derived from the L0 alone, so the two agents of a node never both think so: before the retire
        the old host's agent drives, after it (or after a rollback stopped the new host) the survivor.
        """
        if self.l1_id is None:
            return True
        state = await asyncio.to_thread(self.l0.query)
        running = sorted(x.id for x in state.running_l1s)
        return bool(running) and running[0] == self.l1_id

    async def peer(self) -> int | None:
        """The other running host of this node, if any."""
        state = await asyncio.to_thread(self.l0.query)
        return next((x.id for x in state.running_l1s if x.id != self.l1_id), None)

    # -- the refresh's target image ---------------------------------------------------------

    async def image(self, target: TargetHost) -> Image:
        """The target image as the L0 will check it (see ``ImageStore``); its checksum matches the spec's."""
        try:
            return await self.images.load(target)
        except ImageRefusedError as exc:
            raise PreflightError(f"target image refused on {self.node}: {exc}") from exc

    # -- baseline: what was offline before the refresh (so give-back leaves it alone) --------

    @property
    def _baseline_file(self) -> Path:
        return self.state_dir / "baseline.json"

    def baseline(self) -> Baseline:
        try:
            data = json.loads(self._baseline_file.read_text())
        except FileNotFoundError:
            return Baseline()
        return Baseline(cpus=frozenset(data["cpus"]), memory_blocks=frozenset(data["memory_blocks"]))

    def record_baseline(self) -> Baseline:
        """Note what is offline before we take anything (atomically; only once per refresh)."""
        if self._baseline_file.exists():
            return self.baseline()
        res = self.partitioner.observe()
        baseline = Baseline(cpus=frozenset(res.offline_cpus()), memory_blocks=frozenset(res.offline_blocks()))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._baseline_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cpus": sorted(baseline.cpus), "memory_blocks": sorted(baseline.memory_blocks)}))
        os.replace(tmp, self._baseline_file)
        return baseline

    def clear_baseline(self) -> None:
        self._baseline_file.unlink(missing_ok=True)

    # -- observation -------------------------------------------------------------------------

    async def observe(self, target_sha: bytes) -> Observation:
        """One consistent-enough look at the L0, the kernel and the VMs."""
        with timed("l0", call="query"):
            state = await asyncio.to_thread(self.l0.query)
        offline = await asyncio.to_thread(self.partitioner.offline_now, self.baseline())
        vms = await self.migrator.locate()
        return Observation(
            l0=state,
            offline_cpus=frozenset(offline.cpus),
            offline_blocks=frozenset(offline.memory_blocks),
            vms=vms,
            target_sha=target_sha,
        )

    def block_ranges(self, blocks: list[int], block_size: int) -> list[MemRange]:
        """Physical ranges of memory blocks (block N covers [N*size, (N+1)*size)), merged."""
        ranges: list[MemRange] = []
        for block in sorted(blocks):
            base = block * block_size
            if ranges and ranges[-1].end == base:
                ranges[-1] = MemRange(ranges[-1].base, ranges[-1].size + block_size)
            else:
                ranges.append(MemRange(base, block_size))
        return ranges


def host_runtime(
    node: str,
    l0: L0,
    l1_id: int,
    sysfs: SysfsIO,
    vm_runtime: Path,
    channel_dir: Path,
    handoff_dir: Path,
    images: ImageStore | None = None,
) -> NodeRuntime:
    """The runtime of an agent in one of the two hosts of a node.

    Its sysfs and VMs are its own host's; the channel and the handoff area are the L0's, shared with
    the node's other host. The record of what was offline before the refresh lives in the handoff
    area so the new host's agent leaves it offline too.
    """
    runtime: NodeRuntime

    async def peer() -> int | None:
        return await runtime.peer()

    migrator = HostMigrator(vm_runtime, HandoverChannel(channel_dir, l1_id), peer)
    runtime = NodeRuntime(
        node=node,
        l0=l0,
        partitioner=Partitioner(sysfs),
        migrator=migrator,
        state_dir=handoff_dir,
        l1_id=l1_id,
        images=images or ImageStore(),
    )
    return runtime
