"""A simulated machine: its L0 (simulated), and a real isolated host for every running L1.

The machine watches its simulated L0. An L1 that runs gets a host: new PID, mount and UTS
namespaces with the host's init (``hostinit``) and the agent in it. An L1 that the L0 retired or
stopped loses its host: the init is killed and with it, at once, every process of the host (its
agent, its QEMUs); a retired host's CPUs and memory are hot-added to the survivor's view. Nothing of
a host survives it but what the L0 shares (``layout.py``) and its agent's log, kept by the machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from hostrefresh.l0 import L0Error, L0State, L1State, open_l0, sim_create
from hostrefresh.sim.machine.hostsysfs import boot_view, hot_add
from hostrefresh.sim.machine.layout import NodeLayout
from hostrefresh.sim.sysfs import FIRED_FILE, FakeRules, build_fake_sysfs

log = logging.getLogger("hostrefresh.sim.machine")
BLOCK_SIZE = 128 << 20
POLL_S = 0.02


@dataclass(frozen=True)
class MachineSpec:
    """Shape of a simulated machine."""

    cpus: int = 8
    memory_blocks: int = 32  # of BLOCK_SIZE


AgentCommand = Callable[[NodeLayout, int], list[str]]


class HostProcess:
    """One running host: the ``unshare`` process whose child is the host's init."""

    def __init__(self, layout: NodeLayout, l1: int, command: list[str], agent_env: Sequence[str] = ()) -> None:
        self.layout = layout
        self.l1 = l1
        argv = [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount",
            "--propagation",
            "private",
            "--mount-proc",
            "--uts",
            sys.executable,
            "-m",
            "hostrefresh.sim.machine.hostinit",
            f"--node-dir={layout.base}",
            f"--l1={l1}",
            f"--hostname={layout.node}-l1-{l1}",
            *(f"--agent-env={item}" for item in agent_env),
            "--",
            *command,
        ]
        console = layout.host(l1) / "console.log"
        with open(console, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.init_pid = self._wait_init()
        self.pidns = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        (layout.host(l1) / "init.pid").write_text(f"{self.init_pid}\n")

    def _wait_init(self) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                if children:
                    return int(children[0])
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"host L1 {self.l1} did not start: see {self.layout.host(self.l1) / 'console.log'}")

    def members(self) -> list[int]:
        """Pids (as the machine sees them) of every process still in this host."""
        return processes_in(self.pidns)

    def kill(self) -> None:
        """Every process of the host dies at once (the kernel kills a PID namespace with its init)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        deadline = time.monotonic() + 10
        while self.members() and time.monotonic() < deadline:
            time.sleep(0.01)


def processes_in(pidns: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "pid") == pidns:
                    stat = (entry / "stat").read_text()
                    if stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
                        out.append(int(entry.name))
    return out


def power_on(layout: NodeLayout, spec: MachineSpec = MachineSpec()) -> None:
    """Create the machine's shared areas, its simulated L0 and host 1's view (idempotent)."""
    if (layout.base / "machine.json").exists():
        return
    for d in (layout.ram, layout.channel, layout.handoff, layout.hosts, layout.inside):
        d.mkdir(parents=True, exist_ok=True)
    sim_create(layout.l0_state, cpus=spec.cpus, memory_bytes=spec.memory_blocks * BLOCK_SIZE, durable=False)
    layout.host(1).mkdir(parents=True, exist_ok=True)
    build_fake_sysfs(
        layout.sysfs(1), cpus=spec.cpus, memory_blocks=spec.memory_blocks, block_size=BLOCK_SIZE, rules=FakeRules()
    )
    (layout.base / "machine.json").write_text(json.dumps(asdict(spec)))


class Machine:
    """Keeps one host per running L1 of one simulated machine."""

    def __init__(self, layout: NodeLayout, agent_command: AgentCommand, agent_env: Sequence[str] = ()) -> None:
        self.layout = layout
        self.agent_command = agent_command
        self.agent_env = tuple(agent_env)  # KEY=VALUE for every host's agent (a clock skew: libfaketime)
        self.hosts: dict[int, HostProcess] = {}
        self.l0 = open_l0("sim", layout.l0_state)

    def _boot(self, state: L0State, l1: int) -> None:
        host_dir = self.layout.host(l1)
        host_dir.mkdir(parents=True, exist_ok=True)
        if not self.layout.sysfs(l1).exists():
            info = state.l1(l1)
            part = state.partition(info.partition) if info else None
            if part is None:
                raise RuntimeError(f"L1 {l1} runs in no partition")
            blocks = frozenset(
                b for r in part.memory for b in range(r.base // BLOCK_SIZE, (r.base + r.size) // BLOCK_SIZE)
            )
            boot_view(self.layout.sysfs(1), self.layout.sysfs(l1), part.cpus, blocks, BLOCK_SIZE)
        log.info("%s: L1 %d boots: a new host comes up", self.layout.node, l1)
        self.hosts[l1] = HostProcess(self.layout, l1, self.agent_command(self.layout, l1), self.agent_env)

    def _take_away(self, state: L0State, l1: int) -> None:
        host = self.hosts.pop(l1)
        host.kill()
        info = state.l1(l1)
        survivor = next((x.id for x in state.running_l1s), None)
        if info is not None and info.state == L1State.RETIRED and survivor is not None:
            cpus, blocks = hot_add(self.layout.sysfs(l1), self.layout.sysfs(survivor))
            log.info(
                "%s: L1 %d retired; CPUs %s and blocks %s hot-added to L1 %d",
                self.layout.node,
                l1,
                cpus,
                blocks,
                survivor,
            )
        else:
            log.info("%s: L1 %d stopped: its host is gone", self.layout.node, l1)
        logs = self.layout.base / "logs"
        logs.mkdir(exist_ok=True)
        for name in ("agent.log", "console.log", f"sysfs/{FIRED_FILE}"):  # (what its fake kernel refused)
            with contextlib.suppress(FileNotFoundError):
                shutil.move(self.layout.host(l1) / name, logs / f"l1-{l1}-{Path(name).name}")
        shutil.rmtree(self.layout.host(l1), ignore_errors=True)

    def step(self) -> None:
        """Bring the hosts in line with the L0: boot the new, take away the retired or stopped. The
        machine looks with a peek, not a query: a fault campaign's rules are for the product's calls."""
        state = self.l0.sim_peek()
        running = {x.id for x in state.running_l1s}
        for l1, host in list(self.hosts.items()):
            if host.proc.poll() is not None and l1 in running and len(running) > 1:
                # The host died (its init was killed: a crash). The L0 sees its guest gone and stops
                # the L1 (the simulated L0 has no crash of its own: l1_stop stands for it).
                log.warning("%s: host L1 %d crashed; the L0 stops it", self.layout.node, l1)
                with contextlib.suppress(L0Error):
                    self.l0.l1_stop(l1)
                state = self.l0.sim_peek()
                running = {x.id for x in state.running_l1s}
        for l1 in sorted(set(self.hosts) - running):
            self._take_away(state, l1)
        for l1 in sorted(running - set(self.hosts)):
            self._boot(state, l1)

    def shutdown(self) -> None:
        for l1 in list(self.hosts):
            self.hosts.pop(l1).kill()
        self.l0.close()
