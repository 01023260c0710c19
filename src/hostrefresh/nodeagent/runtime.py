"""A node's local mechanisms bundled for the agent: its L0, its sysfs, its VMs, its state dir.

One ``NodeRuntime`` per node. A real node has one (the real L0, the kernel's sysfs, QEMU VMs); a
simulated node gets a simulated L0 state file, a fake sysfs tree and a QEMU or simulated migrator,
so a thousand of them fit in one process.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    refresh_key: str | None = None  # ``name/uid`` of the refresh being driven (see ``use_refresh``)
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

    async def vmm_binary(self, target: TargetHost) -> str:
        """A VMM-only refresh's QEMU binary (real path) once it passed the image gate (see ``ImageStore``)."""
        try:
            return await self.images.load_vmm(target)
        except ImageRefusedError as exc:
            raise PreflightError(f"target QEMU refused on {self.node}: {exc}") from exc

    # -- baseline: what was offline before the refresh (so give-back leaves it alone) --------
    #
    # The record belongs to one refresh (its name and uid) and lives as long as that refresh: no step
    # deletes it, the next refresh of the node replaces it. Until Partitioning has recorded it, this
    # refresh has taken nothing, so whatever is offline is offline by someone else's choice (an
    # administrator, a memory block with hardware errors) and is left alone by every path.
    # Once everything the refresh took is back online (the rollback's or Devirtualizing's give-back)
    # the record says "ended". A record that never ended belongs to a refresh that left the node
    # half-way (declared Failed and deleted before its agent finished): the next refresh inherits its
    # baseline, so what that one left offline is given back at the end of this one, not kept forever.

    @property
    def _baseline_file(self) -> Path:
        return self.state_dir / "baseline.json"

    def use_refresh(self, key: str) -> None:
        """The refresh (``name/uid``) this runtime drives now; its baseline record is the one that counts."""
        self.refresh_key = key

    def recorded_baseline(self) -> Baseline | None:
        """What was offline before this refresh took anything; None while it has taken nothing."""
        data = self._baseline_record()
        if data is None:
            return None
        owner = data.get("refresh")
        if owner is not None and self.refresh_key is not None and owner != self.refresh_key:
            return None  # an earlier refresh's record
        return Baseline(cpus=frozenset(data["cpus"]), memory_blocks=frozenset(data["memory_blocks"]))

    def baseline(self) -> Baseline:
        """The baseline to leave alone: the record, or (nothing taken yet) everything offline now."""
        recorded = self.recorded_baseline()
        return recorded if recorded is not None else self._offline_now()

    def _offline_now(self) -> Baseline:
        """Everything offline at this moment, as a baseline."""
        res = self.partitioner.observe(zones=False)
        return Baseline(cpus=frozenset(res.offline_cpus()), memory_blocks=frozenset(res.offline_blocks()))

    @property
    def _target_file(self) -> Path:
        return self.state_dir / "target.json"

    def record_target(self, sha256: bytes) -> None:
        """Note the checksum of the image this refresh boots, before it boots it: once the new host
        runs, the image file is no longer needed, and the host is found by this checksum even if the
        file changed or went away meanwhile."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._target_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"refresh": self.refresh_key, "sha256": sha256.hex()}))
        os.replace(tmp, self._target_file)

    def recorded_target(self) -> bytes | None:
        """The checksum this refresh booted its new host from; None before BootingTarget."""
        try:
            data = json.loads(self._target_file.read_text())
        except FileNotFoundError:
            return None
        if data.get("refresh") != self.refresh_key:
            return None  # an earlier refresh's record
        return bytes.fromhex(str(data["sha256"]))

    def record_baseline(self) -> Baseline:
        """Note what is offline before we take anything (atomically; only once per refresh)."""
        recorded = self.recorded_baseline()
        if recorded is not None:
            return recorded
        earlier = self._unended_record()
        baseline = self._offline_now() if earlier is None else earlier[1]
        record = {
            "refresh": self.refresh_key,
            "cpus": sorted(baseline.cpus),
            "memory_blocks": sorted(baseline.memory_blocks),
            "ended": False,
        }
        if earlier is not None:
            record["inheritedFrom"] = earlier[0]
        self._write_baseline(record)
        return baseline

    def inherited_from(self) -> str | None:
        """The earlier refresh (``name/uid``) whose unfinished record this refresh's baseline took over."""
        data = self._baseline_record()
        if data is None:
            return None
        inherited = data.get("inheritedFrom") if data.get("refresh") == self.refresh_key else None
        return str(inherited) if inherited else None

    def end_baseline(self) -> None:
        """Everything this refresh took is back online: its record no longer binds the next refresh."""
        data = self._baseline_record()
        if data is not None and data.get("refresh") == self.refresh_key and data.get("ended") is False:
            self._write_baseline({**data, "ended": True})

    def _unended_record(self) -> tuple[str, Baseline] | None:
        """An earlier refresh's record that never ended (records of older agents carry no "ended": done)."""
        data = self._baseline_record()
        if data is None:
            return None
        owner = data.get("refresh")
        if owner == self.refresh_key or data.get("ended") is not False:
            return None
        return str(owner), Baseline(cpus=frozenset(data["cpus"]), memory_blocks=frozenset(data["memory_blocks"]))

    def _baseline_record(self) -> dict[str, Any] | None:
        """The offline record as stored (whichever refresh it belongs to); None when there is none."""
        try:
            data: dict[str, Any] = json.loads(self._baseline_file.read_text())
        except FileNotFoundError:
            return None
        return data

    def _write_baseline(self, record: Mapping[str, object]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._baseline_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self._baseline_file)

    # -- observation -------------------------------------------------------------------------

    async def observe(self, target_sha: bytes | None) -> Observation:
        """One consistent-enough look at the L0, the kernel and the VMs."""
        with timed("l0", call="query"):
            state = await asyncio.to_thread(self.l0.query)
        recorded = self.recorded_baseline()
        if recorded is None:  # nothing taken by this refresh: no need to read the CPUs and blocks
            offline_cpus: frozenset[int] = frozenset()
            offline_blocks: frozenset[int] = frozenset()
        else:
            offline = await asyncio.to_thread(self.partitioner.offline_now, recorded)
            offline_cpus, offline_blocks = frozenset(offline.cpus), frozenset(offline.memory_blocks)
        vms = await self.migrator.locate()
        return Observation(
            l0=state,
            offline_cpus=offline_cpus,
            offline_blocks=offline_blocks,
            vms=vms,
            target_sha=target_sha,
            writes_pending=frozenset(self.partitioner.pending),
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
