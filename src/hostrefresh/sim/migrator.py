"""A simulated migrator (no QEMU) with the agent's `Migrator` interface, for fleets of a thousand nodes.

VM placement is kept in one small JSON file per node (or only in memory), so a restarted simulated
agent observes what its predecessor did, like the real inventory. Delays and failures are configurable
and deterministic (seeded), so fleet tests can exercise rollback paths reproducibly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hostrefresh.nodeagent.migrate.base import Migrator
from hostrefresh.nodeagent.migrate.types import (
    HandoverPath,
    HandoverRecord,
    MigrationPolicy,
    Outcome,
    Role,
    VmLocation,
    VmmView,
)


@dataclass(frozen=True)
class SimVm:
    name: str
    memory_mib: int = 256
    shared_memory: bool = True


@dataclass
class SimBehaviour:
    """What the simulated QEMU does: delays and which handovers fail."""

    zero_copy_s: float = 0.005
    copy_s_per_gib: float = 3.0
    target_start_s: float = 0.05
    fail_names: set[str] = field(default_factory=set)  # these always fail (VM stays on its source)
    fail_rate: float = 0.0
    seed: int = 0


class SimMigrator:
    """Simulated VMs of one node; `state_file=None` keeps placement in memory only."""

    def __init__(
        self,
        vms: Sequence[SimVm],
        state_file: Path | None = None,
        policy: MigrationPolicy | None = None,
        behaviour: SimBehaviour | None = None,
    ) -> None:
        self.vms = {vm.name: vm for vm in vms}
        self.state_file = state_file
        self.policy = policy or MigrationPolicy()
        self.behaviour = behaviour or SimBehaviour()
        self._rng = random.Random(self.behaviour.seed)
        self._memory: dict[str, Role] = {}
        self._vmm_memory: dict[str, dict[str, str | None]] = {}
        self._lock = asyncio.Lock()

    def _load(self) -> dict[str, Role]:
        if self.state_file is None:
            state = dict(self._memory)
        else:
            try:
                raw = json.loads(self.state_file.read_text())
            except FileNotFoundError:
                raw = {}
            state = {k: ("target" if v == "target" else "source") for k, v in raw.items()}
        return {name: state.get(name, "source") for name in self.vms}

    def _save(self, state: Mapping[str, Role]) -> None:
        if self.state_file is None:
            self._memory = dict(state)
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(state), sort_keys=True))
        os.replace(tmp, self.state_file)

    async def locate(self) -> dict[str, VmLocation]:
        return {name: VmLocation(role) for name, role in self._load().items()}

    async def prepare_targets(self, names: Sequence[str] | None = None) -> dict[str, float]:
        await asyncio.sleep(self.behaviour.target_start_s)
        return {n: self.behaviour.target_start_s * 1000.0 for n in (names or list(self.vms))}

    async def _move(self, name: str, to: Role) -> HandoverRecord:
        async with self._lock:
            if self._load()[name] == to:
                return HandoverRecord(name=name, direction=to, outcome=Outcome.ALREADY)
        vm = self.vms[name]
        zero_copy = self.policy.zero_copy and vm.shared_memory
        if not zero_copy and not self.policy.copy_fallback:
            return HandoverRecord(name, to, Outcome.FAILED, error="copy fallback disabled")
        path = HandoverPath.ZERO_COPY if zero_copy else HandoverPath.COPY
        seconds = self.behaviour.zero_copy_s if zero_copy else self.behaviour.copy_s_per_gib * vm.memory_mib / 1024
        await asyncio.sleep(seconds)
        if name in self.behaviour.fail_names or self._rng.random() < self.behaviour.fail_rate:
            return HandoverRecord(name, to, Outcome.FAILED, path=path, error="simulated migration failure")
        async with self._lock:
            state = self._load()
            state[name] = to
            self._save(state)
        return HandoverRecord(
            name,
            to,
            Outcome.MOVED,
            path=path,
            downtime_ms=1.0 if zero_copy else 100.0,
            total_ms=seconds * 1000.0,
            bytes_transferred=0 if zero_copy else vm.memory_mib << 20,
        )

    async def _move_all(self, names: Sequence[str] | None, to: Role) -> list[HandoverRecord]:
        limit = asyncio.Semaphore(max(1, self.policy.parallel))

        async def one(name: str) -> HandoverRecord:
            async with limit:
                return await self._move(name, to)

        return list(await asyncio.gather(*(one(n) for n in (names or list(self.vms)))))

    async def hand_over(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        return await self._move_all(names, "target")

    async def hand_back(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        return await self._move_all(names, "source")

    async def commit(self) -> None:
        async with self._lock:
            self._save(dict.fromkeys(self.vms, "source"))

    async def footprint(self) -> int:
        return sum(vm.memory_mib for vm in self.vms.values()) << 20

    async def tidy(self) -> None:
        """Nothing to tidy: the simulator keeps one placement per VM."""

    def vmm(self) -> SimVmm:
        return SimVmm(self)


#: The binary every simulated VM runs until a VMM-only refresh moves it.
SIM_QEMU = "/usr/bin/qemu-system-x86_64"


class SimVmm:
    """A simulated VMM switch: which binary each simulated VM runs, kept beside the placement file.

    The simulated QEMU has no build to ask, so every binary can receive every VM.
    """

    def __init__(self, sim: SimMigrator) -> None:
        self.sim = sim
        self.file = sim.state_file.with_name("vmm.json") if sim.state_file is not None else None

    def _load(self) -> dict[str, dict[str, str | None]]:
        raw: dict[str, dict[str, str | None]] = {}
        if self.file is not None:
            try:
                raw = json.loads(self.file.read_text())
            except FileNotFoundError:
                raw = {}
        else:
            raw = self.sim._vmm_memory
        return {n: raw.get(n) or {"binary": SIM_QEMU, "target": None} for n in self.sim.vms}

    def _save(self, state: Mapping[str, dict[str, str | None]]) -> None:
        if self.file is None:
            self.sim._vmm_memory = dict(state)
            return
        tmp = self.file.with_suffix(".tmp")
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(dict(state), sort_keys=True))
        os.replace(tmp, self.file)

    async def view(self) -> VmmView:
        where = self.sim._load()
        state = self._load()
        binaries = {n: str(state[n]["target"] if where[n] == "target" else state[n]["binary"]) for n in state}
        pending = frozenset(n for n, s in state.items() if s["target"])
        return VmmView({n: VmLocation(r) for n, r in where.items()}, binaries, pending, frozenset(state))

    async def refusals(self, binary: str) -> list[str]:
        return []

    async def swap(self, binary: str, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        async with self.sim._lock:
            state = self._load()
            wanted = [n for n in (names or list(self.sim.vms)) if state[n]["binary"] != binary]
            for n in wanted:
                state[n]["target"] = binary
            self._save(state)
        return await self.sim._move_all(wanted, "target")

    async def restore(self, names: Sequence[str] | None = None) -> list[HandoverRecord]:
        records = await self.sim._move_all(names, "source")
        async with self.sim._lock:
            state = self._load()
            for n in names or list(self.sim.vms):
                state[n]["target"] = None
            self._save(state)
        return records

    async def commit(self) -> None:
        async with self.sim._lock:
            where = self.sim._load()
            state = self._load()
            for n, s in state.items():
                if where[n] == "target" and s["target"]:
                    state[n] = {"binary": s["target"], "target": None}
            self._save(state)
            self.sim._save(dict.fromkeys(self.sim.vms, "source"))


def _conforms(m: SimMigrator) -> Migrator:
    """Static check (mypy) that the simulator satisfies the protocol the agent programs against."""
    return m
