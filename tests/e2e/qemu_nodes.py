"""Simulated nodes whose VMs are real QEMU test guests, for the end-to-end tests.

A node is the simulated L0 + fake sysfs of ``create_sim_node`` plus test-guest VMs launched here,
on the source side, through the same ``QemuMigrator`` (same inventory directory) that the agent
process opens with ``--sim-qemu``. Everything lives under a ``GuestLab`` (short /tmp paths for unix
sockets, shared RAM on /dev/shm), whose ``close`` kills any QEMU a test left behind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from hostrefresh.controlplane import ControlPlane
from hostrefresh.l0 import L0State, open_l0
from hostrefresh.nodeagent.fakesysfs import FakeSysfsIO
from hostrefresh.nodeagent.guest import GuestVerifier, PatternReport
from hostrefresh.nodeagent.guest.lab import GuestLab
from hostrefresh.nodeagent.migrate import QemuMigrator, Role, VmLocation
from hostrefresh.nodeagent.migrate.process import pid_alive
from hostrefresh.nodeagent.partitioner import Partitioner
from hostrefresh.nodeagent.simnode import SimNodeSpec, create_sim_node

from .harness import Process, agent_process

SPEC = SimNodeSpec(cpus=8, memory_blocks=32, sim_vms=0, qemu=True)


@dataclass(frozen=True)
class Running:
    """Where one VM runs now: the owner instance's pid and control socket."""

    pid: int
    qmp_socket: str


class QemuNode:
    """One simulated node with real QEMU VMs under ``lab``."""

    def __init__(self, lab: GuestLab, name: str, spec: SimNodeSpec = SPEC) -> None:
        self.lab = lab
        self.name = name
        self.sim_root = lab.root / "nodes"
        self.base = create_sim_node(self.sim_root, name, spec)
        self.migrator = QemuMigrator(self.base / "vms")
        lab.migrators.append(self.migrator)  # lab.close() destroys every VM in this inventory

    # -- VMs -----------------------------------------------------------------------------------

    def launch(self, names: list[str], *, shared: bool, memory_mib: int = 64) -> None:
        """Start test guests on the old host and wait until each has dirtied all its RAM once."""

        async def go() -> None:
            for vm in names:
                await self.migrator.launch(self.lab.spec(vm, shared=shared, memory_mib=memory_mib))
            for vm in names:
                await GuestVerifier(self.migrator.owner_socket(vm), self.lab.root).wait_dirtied()

        asyncio.run(go())

    def running(self) -> dict[str, Running]:
        """Owner instance of each VM, from the inventory (as the agent left it)."""
        out = {}
        for record in self.migrator.inventory.records():
            inst = record.instances[record.owner]
            out[record.name] = Running(inst.pid, inst.qmp_socket)
        return out

    def instances(self, role: Role) -> dict[str, Running]:
        """Instances of a given role (source/target) recorded for each VM."""
        out = {}
        for record in self.migrator.inventory.records():
            inst = record.instances.get(role)
            if inst is not None:
                out[record.name] = Running(inst.pid, inst.qmp_socket)
        return out

    def locate(self) -> dict[str, VmLocation]:
        return asyncio.run(self.migrator.locate())

    def verify_all(self) -> dict[str, PatternReport]:
        """Every guest runs, its whole RAM pattern is intact, and it is still advancing."""

        async def go() -> dict[str, PatternReport]:
            reports = {}
            for vm in self.migrator.inventory.names():
                verifier = GuestVerifier(self.migrator.owner_socket(vm), self.lab.root)
                reports[vm] = await verifier.assert_ok()
            return reports

        return asyncio.run(go())

    @staticmethod
    def alive(pid: int, marker: str) -> bool:
        return pid_alive(pid, marker)

    def qemu_pids(self) -> list[int]:
        """Live QEMU processes started for this node (by the test or by any agent process)."""
        marker = str(self.base / "vms")
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and pid_alive(int(entry.name), marker):
                cmd = (entry / "cmdline").read_bytes().split(b"\0")[0]
                if b"qemu" in cmd:
                    pids.append(int(entry.name))
        return sorted(pids)

    # -- the node as the L0 and the kernel see it -------------------------------------------

    def l0_state(self) -> L0State:
        with open_l0("sim", self.base / "l0.state") as l0:
            return l0.query()

    def assert_as_it_was(self) -> None:
        """One host (the original L1 1), one partition, nested off, everything online, VMs on the old host."""
        state = self.l0_state()
        assert not state.nested, state.summary()
        assert [x.id for x in state.running_l1s] == [1], state.summary()
        assert len(state.partitions) == 1, state.summary()
        offline = Partitioner(FakeSysfsIO(self.base / "sysfs")).offline_now()
        assert offline.cpus == [] and offline.memory_blocks == [], offline
        locations = self.locate()
        assert locations and set(locations.values()) == {VmLocation.SOURCE}, locations

    # -- the agent process -------------------------------------------------------------------

    def agent(self, cp: ControlPlane, log_dir: Path, name: str) -> Process:
        """The real agent process hosting this node, its VMs opened with ``--sim-qemu``."""
        proc = agent_process(cp, self.lab.root, [self.name], "--sim-qemu", "--retry-seconds=0.5", name=name)
        proc.log_path = log_dir / f"{name}.log"  # keep the log after the lab is removed
        return proc
