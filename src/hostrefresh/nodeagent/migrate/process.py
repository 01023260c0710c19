"""Start, observe and stop QEMU processes, one per VM instance (source or target).

QEMUs run in their own session so they outlive the agent (kill -9 of the agent must not kill VMs).
Liveness is observed, never remembered: a pid counts only if /proc shows a live process whose command
line names this instance's QMP socket (guards against pid reuse). Children of this process are reaped
so that stopped QEMUs do not linger as zombies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hostrefresh import failpoints
from hostrefresh.nodeagent.migrate.placement import HostCgroup, PlacementError
from hostrefresh.nodeagent.migrate.types import Role, VmSpec
from hostrefresh.nodeagent.qmpsession import QmpError, qmp_session

log = logging.getLogger("hostrefresh.agent")

QEMU_BINARY_ENV = "HOSTREFRESH_QEMU"
_SUN_PATH_MAX = 107


class QemuStartError(RuntimeError):
    """QEMU exited or did not open its monitor in time; the message carries its log."""


@dataclass
class _Placement:
    cgroup: HostCgroup | None = None


_placement = _Placement()


def place_vms_in(cgroup: HostCgroup | None) -> None:
    """Every QEMU this process starts from now on joins `cgroup` (None: stays in ours). Set once at
    start-up by an agent that runs in a pod (``--vm-cgroup``); see placement.py for why."""
    _placement.cgroup = cgroup


@dataclass(frozen=True)
class Instance:
    """One running QEMU of a VM, as recorded in the inventory."""

    role: Role
    pid: int
    qmp_socket: str  # control monitor (migrator)
    aux_socket: str  # second monitor for observers (guest verifier, operators)
    log: str
    started_at: float
    start_ms: float  # spawn until the monitor answered

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Instance:
        return cls(**data)


def qemu_binary(spec: VmSpec | None = None) -> str:
    """The VMM binary for ``spec``: its own, else $HOSTREFRESH_QEMU, else the one on PATH."""
    if spec is not None and spec.qemu:
        return spec.qemu
    return os.environ.get(QEMU_BINARY_ENV, "qemu-system-x86_64")


def instance_paths(run_dir: Path, name: str, role: Role) -> tuple[Path, Path, Path]:
    """Fresh (control socket, aux socket, log) paths; unique per launch so a new instance never
    reuses the sockets of a running one (roles are relabelled after a refresh). Must fit sun_path."""
    base = run_dir / f"{name}.{role}.{secrets.token_hex(3)}"
    qmp, aux, log = Path(f"{base}.qmp"), Path(f"{base}.aux"), Path(f"{base}.log")
    if len(str(aux)) > _SUN_PATH_MAX:
        raise QemuStartError(f"socket path too long for a unix socket: {aux}")
    return qmp, aux, log


def qemu_command(spec: VmSpec, qmp: Path, aux: Path, *, incoming: bool, paused: bool = False) -> list[str]:
    """The QEMU command line; source and target differ only in `-incoming defer`.

    ``paused`` (-S): the guest does not run once the incoming state is loaded until someone says
    ``cont``; the two-host handover resumes it only after deciding that it arrived (see channel.py).
    """
    size = f"{spec.memory_mib}M"
    if spec.mem_path is not None:
        backend = f"memory-backend-file,id=ram0,size={size},mem-path={spec.mem_path},share=on"
    else:
        backend = f"memory-backend-ram,id=ram0,size={size}"
    cmd = [
        qemu_binary(spec),
        "-name",
        spec.name,
        "-machine",
        f"{spec.machine},accel={spec.accel},memory-backend=ram0",
        "-object",
        backend,
        "-m",
        size,
        "-smp",
        str(spec.vcpus),
        "-kernel",
        spec.kernel,
        "-append",
        spec.append,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "none",
        "-qmp",
        f"unix:{qmp},server=on,wait=off",
        "-qmp",
        f"unix:{aux},server=on,wait=off",
    ]
    if incoming:
        cmd += ["-incoming", "defer"]
    if paused:
        cmd.append("-S")
    return cmd


def _at_normal_priority(argv: list[str]) -> list[str]:
    """A guest's QEMU runs at the normal CPU priority even when the agent that starts it runs higher
    (the agent's ``--nice``): its vCPUs must not crowd out the agents and the other guests' QEMUs."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    return ["nice", "-n", str(-current), *argv] if current < 0 else argv


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child; harmless otherwise."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int, marker: str) -> bool:
    """True if `pid` is a live (non-zombie) process whose command line contains `marker`."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def instance_alive(inst: Instance) -> bool:
    return pid_alive(inst.pid, inst.qmp_socket)


def _destinations_in(run_dir: Path) -> dict[int, str]:
    """Live destination QEMUs (started to receive a guest) with a control monitor in ``run_dir``: pid ->
    that socket's path."""
    prefix, found = f"unix:{run_dir}/", {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if b"-incoming" not in args:
            continue
        for flag, value in itertools.pairwise(args):
            text = value.decode(errors="replace")
            if flag == b"-qmp" and text.startswith(prefix) and ".qmp," in text:
                found[int(entry.name)] = text.removeprefix("unix:").split(",", 1)[0]
                break
    return found


def reap_unrecorded(run_dir: Path, recorded: set[str]) -> list[str]:
    """Kill every destination QEMU started in ``run_dir`` whose control socket no record names, and wait
    until it is gone; returns their sockets.

    An agent that died between launching a destination and recording it left that QEMU to nobody: no
    step observes, uses or stops it, and it holds memory and a mapping of the guest's shared RAM until
    the host goes. Such a QEMU never ran the guest: a destination runs it only once its arrival is
    recorded. Sources are not the agent's to reap: the VM runtime starts them, maybe at this very moment.
    Call this when the agent launches nothing yet (its start, before it serves anything).
    """
    leaked = {pid: sock for pid, sock in _destinations_in(run_dir).items() if sock not in recorded}
    for pid, sock in leaked.items():
        log.warning("killing QEMU %d (%s): started by an earlier agent that died before recording it", pid, sock)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(pid_alive(pid, sock) for pid, sock in leaked.items()) and time.monotonic() < deadline:
        time.sleep(0.01)
    for sock in leaked.values():
        for path in (Path(sock), Path(sock).with_suffix(".aux")):
            path.unlink(missing_ok=True)
    return sorted(leaked.values())


async def launch(
    spec: VmSpec, role: Role, run_dir: Path, *, incoming: bool, paused: bool = False, timeout: float = 30.0
) -> Instance:
    """Start a QEMU for `spec` and return once its control monitor answers."""
    if incoming:
        failpoints.hit(failpoints.DESTINATION_START, QemuStartError)
    run_dir.mkdir(parents=True, exist_ok=True)
    qmp, aux, log = instance_paths(run_dir, spec.name, role)
    for stale in (qmp, aux):
        stale.unlink(missing_ok=True)
    t0 = time.monotonic()
    # A QEMU that must join a host cgroup starts paused and runs its guest only once it is there.
    resume = _placement.cgroup is not None and not incoming and not paused
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            _at_normal_priority(qemu_command(spec, qmp, aux, incoming=incoming, paused=paused or resume)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if _placement.cgroup is not None:
        try:
            _placement.cgroup.adopt(proc.pid)
        except PlacementError as exc:
            proc.kill()
            proc.wait()
            raise QemuStartError(f"{spec.name}/{role}: {exc}") from exc
    deadline = t0 + timeout
    while True:
        if proc.poll() is not None:
            raise QemuStartError(f"{spec.name}/{role}: qemu exited {proc.returncode}: {log.read_text()[-2000:]}")
        if qmp.exists():
            with contextlib.suppress(QmpError):
                async with qmp_session(qmp, timeout=1.0) as session:
                    await session.status()
                    break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise QemuStartError(f"{spec.name}/{role}: monitor not up in {timeout}s: {log.read_text()[-2000:]}")
        await asyncio.sleep(0.005)
    if incoming:
        failpoints.hit(failpoints.DESTINATION_LAUNCHED)
    if resume:
        async with qmp_session(qmp, timeout=5.0) as session:
            await session.execute("cont")
    return Instance(
        role=role,
        pid=proc.pid,
        qmp_socket=str(qmp),
        aux_socket=str(aux),
        log=str(log),
        started_at=time.time(),
        start_ms=(time.monotonic() - t0) * 1000.0,
    )


async def stop(inst: Instance, *, graceful: bool = True, timeout: float = 5.0) -> None:
    """Stop an instance (QMP `quit`, then SIGKILL) and wait until it is gone. Idempotent."""
    if not instance_alive(inst):
        return
    if graceful:
        with contextlib.suppress(QmpError):
            async with qmp_session(Path(inst.qmp_socket), timeout=1.0) as session:
                await session.execute("quit")
    deadline = time.monotonic() + timeout
    killed = not graceful
    if killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(inst.pid, signal.SIGKILL)
    while instance_alive(inst):
        if not killed and time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inst.pid, signal.SIGKILL)
            killed = True
        if time.monotonic() > deadline + timeout:
            raise OSError(f"QEMU pid {inst.pid} survives SIGKILL (stuck in the kernel?)")
        await asyncio.sleep(0.01)
