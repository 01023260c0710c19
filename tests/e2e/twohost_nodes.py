"""Nodes of the machine simulator: two real isolated hosts per node, real QEMU test guests in them.

The test runs ``python -m hostrefresh.sim.machine run`` as a real process (the machine); the machine
starts a host (PID, mount and UTS namespaces, an init, an agent) for every running L1 of the node's
simulated L0 and kills the whole host when the L0 retires or stops it. The test looks at the
machine from outside: the hosts' own directories, their PID namespaces, the QEMU processes in each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.names import DEFAULT_NAMESPACE
from hostrefresh.l0 import FaultRule, L0State, open_l0
from hostrefresh.nodeagent.migrate import Inventory, VmRecord
from hostrefresh.nodeagent.migrate.process import pid_alive
from hostrefresh.sim.guest import GuestVerifier, PatternReport
from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.machine.layout import NodeLayout
from hostrefresh.sim.machine.machine import processes_in
from hostrefresh.sim.machine.vms import init_pid, launch_in_host

from .harness import Process, image_dir, wait_for


@dataclass(frozen=True)
class Qemu:
    """A QEMU process of the node as the machine sees it: its pid and the host (PID namespace) it is in."""

    pid: int
    pidns: str
    cmdline: str


class TwoHostNode:
    """One simulated machine with its hosts, under ``lab``."""

    def __init__(self, lab: GuestLab, name: str) -> None:
        self.lab = lab
        self.name = name
        self.layout = NodeLayout(lab.root / "machines" / name)
        self.process: Process | None = None
        #: The operator acting on this node, when the test runs one: its log belongs in the diagnosis.
        self.operator: Process | None = None

    # -- the machine process ---------------------------------------------------------------------

    def machine(self, cp: ControlPlane, log_dir: Path, agent_env: Sequence[str] = ()) -> Process:
        """The machine process; its hosts' agents allow the images of ``Cluster(cp, log_dir)`` and run
        with ``agent_env`` (KEY=VALUE) added to their environment."""
        argv = [
            sys.executable,
            "-m",
            "hostrefresh.sim.machine",
            "run",
            f"--root={self.layout.base.parent}",
            f"--node={self.name}",
            *(f"--agent-env={item}" for item in agent_env),
            "--",
            f"--kubeconfig={cp.kubeconfig}",
            f"--namespace={DEFAULT_NAMESPACE}",
            "--lease-seconds=10",
            "--retry-seconds=0.5",
            f"--image-dir={image_dir(log_dir)}",
        ]
        self.process = Process(argv, log_dir / f"machine-{self.name}.log")
        return self.process

    def wait_up(self) -> None:
        wait_for(lambda: self.agent_pid(1), timeout=30, what=f"{self.name}: the agent of host L1 1")

    def logs(self) -> str:
        """The machine's log and every host's agent log (kept by the machine when a host goes)."""
        parts = []
        if self.process is not None:
            parts.append(f"--- machine\n{self.process.tail(30)}")
        if self.operator is not None and self.operator.proc is not None:
            code = self.operator.proc.poll()
            state = "running" if code is None else f"exited with {code}"
            parts.append(f"--- operator ({state})\n{self.operator.tail(30)}")
        for path in sorted([*self.layout.hosts.glob("l1-*/agent.log"), *(self.layout.base / "logs").glob("*.log")]):
            text = path.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- {path.relative_to(self.layout.base)}\n" + "\n".join(text))
        return "\n".join(parts)

    # -- VMs -------------------------------------------------------------------------------------

    def launch(
        self, names: list[str], *, shared: bool = True, memory_mib: int = 64, l1: int | None = None, qemu: str = ""
    ) -> None:
        """Start test guests in host ``l1`` (default: the driving host) on QEMU ``qemu`` (default: the
        installed one); wait until each has dirtied its RAM."""
        for vm in names:
            spec = self.lab.spec(vm, shared=shared, memory_mib=memory_mib, qemu=qemu)
            launch_in_host(self.layout, spec, l1)

        async def dirtied() -> None:
            for vm in names:
                await GuestVerifier(self.aux_socket(vm), self.lab.root).wait_dirtied()

        asyncio.run(dirtied())

    def records(self, l1: int) -> dict[str, VmRecord]:
        inventory = Inventory(self.layout.run(l1))
        return {r.name: r for r in inventory.records()}

    def host_of(self, vm: str) -> int:
        """The host whose inventory runs ``vm`` (as its own VM)."""
        found = []
        for l1 in self.running_l1s():
            record = self.records(l1).get(vm)
            if record is not None and "source" in record.instances:
                found.append(l1)
        assert len(found) == 1, f"{vm} recorded in hosts {found}"
        return found[0]

    def aux_socket(self, vm: str) -> Path:
        l1 = self.host_of(vm)
        inst = self.records(l1)[vm].instances["source"]
        return self.layout.outside(inst.aux_socket, l1)

    def verify_all(self, names: list[str]) -> dict[str, PatternReport]:
        """Every guest runs, its whole RAM pattern is intact, and it is still advancing."""

        async def go() -> dict[str, PatternReport]:
            return {vm: await GuestVerifier(self.aux_socket(vm), self.lab.root).assert_ok() for vm in names}

        return asyncio.run(go())

    # -- hosts and processes ---------------------------------------------------------------------

    def channel_empty(self) -> bool:
        return not any(self.layout.channel.iterdir())

    def channel_files(self) -> list[str]:
        """What the channel holds (for a failure's message)."""
        root = self.layout.channel
        return sorted(str(p.relative_to(root)) for p in root.rglob("*"))

    def l0_state(self) -> L0State:
        """The L0's state, peeked at: the test's own looks never meet (or use up) a fault rule."""
        with open_l0("sim", self.layout.l0_state) as l0:
            return l0.sim_peek()

    def arm(self, rule: FaultRule) -> None:
        with open_l0("sim", self.layout.l0_state) as l0:
            l0.sim_inject_fault(rule)

    def running_l1s(self) -> list[int]:
        return sorted(x.id for x in self.l0_state().running_l1s)

    def pidns(self, l1: int) -> str | None:
        with contextlib.suppress(OSError, ValueError):
            return os.readlink(f"/proc/{init_pid(self.layout, l1)}/ns/pid")
        return None

    def members(self, pidns: str) -> list[int]:
        return processes_in(pidns)

    def agent_pid(self, l1: int) -> int | None:
        ns = self.pidns(l1)
        if ns is None:
            return None
        for pid in processes_in(ns):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if argv[1:3] == [b"-m", b"hostrefresh.sim.agent"]:  # not the init, whose argv names it too
                    return pid
        return None

    def kill_agent(self, l1: int) -> int:
        """SIGKILL the agent of host ``l1`` (its init starts a new one)."""
        pid = self.agent_pid(l1)
        assert pid is not None, f"no agent in host L1 {l1}"
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_host(self, l1: int) -> list[int]:
        """Every process of host ``l1`` dies at once (its init is killed); returns who was in it."""
        ns = self.pidns(l1)
        assert ns is not None, f"host L1 {l1} does not run"
        members = processes_in(ns)
        os.kill(init_pid(self.layout, l1), signal.SIGKILL)
        wait_for(lambda: not processes_in(ns), timeout=10, interval=0.02, what=f"host L1 {l1} gone")
        return members

    def qemus(self) -> list[Qemu]:
        """Every live QEMU of this node, wherever it runs."""
        out = []
        marker = str(self.layout.base).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes()
                if b"qemu-system" in cmd.split(b"\0")[0] and marker in cmd and pid_alive(int(entry.name), "qemu"):
                    out.append(Qemu(int(entry.name), os.readlink(entry / "ns" / "pid"), cmd.decode(errors="replace")))
        return out
