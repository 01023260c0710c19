"""What a QEMU build supports, asked of the binary itself, and whether it can receive a given VM.

A migration stream loads only into a QEMU that builds the same machine: the same machine type
(a versioned one such as ``pc-q35-7.2``; an alias such as ``q35`` names the newest the build knows,
so it must resolve to the same type in both builds), the same accelerator and the same backend
objects. Asked before anything moves, these answers let a VMM-only refresh refuse a target that
cannot take a VM, by name and with the fix, instead of failing half-way through a node.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from hostrefresh.nodeagent.migrate.types import VmSpec

PROBE_TIMEOUT_S = 15.0
_ALIAS = re.compile(r"\(alias of ([^)]+)\)")


@dataclass(frozen=True)
class VmmBuild:
    """One QEMU binary's answers to ``--version``, ``-machine help``, ``-accel help``, ``-object help``."""

    binary: str
    version: str
    machines: dict[str, str]  # machine type -> the type it is an alias of ("" when it is no alias)
    accels: frozenset[str]
    objects: frozenset[str]

    def resolve(self, machine: str) -> str:
        return self.machines.get(machine) or machine


async def _ask(binary: str, *args: str) -> str:
    try:
        proc = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        raise ValueError(f"{binary} cannot be run: {exc.strerror or exc}") from None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PROBE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ValueError(f"{binary} {' '.join(args)} did not answer in {PROBE_TIMEOUT_S:.0f}s") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise ValueError(f"{binary} {' '.join(args)} exited {proc.returncode}: {text.strip()[-300:]}")
    return text


def parse_machines(text: str) -> dict[str, str]:
    machines: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        parts = line.split(None, 1)
        if not parts:
            continue
        alias = _ALIAS.search(parts[1]) if len(parts) > 1 else None
        machines[parts[0]] = alias.group(1) if alias else ""
    return machines


def parse_list(text: str) -> frozenset[str]:
    """The names of a ``help`` listing: one per line after its heading."""
    return frozenset(line.split()[0] for line in text.splitlines()[1:] if line.strip())


async def probe_build(binary: str) -> VmmBuild:
    """Ask ``binary`` what it supports; ValueError when it does not answer like a QEMU system emulator."""
    version = await _ask(binary, "--version")
    first = version.splitlines()[0] if version.strip() else ""
    if not first.startswith("QEMU emulator version "):
        raise ValueError(f"{binary} is not a QEMU system emulator (--version printed {first[:80]!r})")
    machines, accels, objects = await asyncio.gather(
        _ask(binary, "-machine", "help"), _ask(binary, "-accel", "help"), _ask(binary, "-object", "help")
    )
    return VmmBuild(
        binary=binary,
        version=first.removeprefix("QEMU emulator version ").strip(),
        machines=parse_machines(machines),
        accels=parse_list(accels),
        objects=parse_list(objects),
    )


def backend_object(spec: VmSpec) -> str:
    return "memory-backend-file" if spec.shared_memory else "memory-backend-ram"


def incompatibilities(spec: VmSpec, source: VmmBuild, target: VmmBuild) -> list[str]:
    """Why ``target`` cannot receive the VM ``spec`` now running on ``source`` (empty: it can)."""
    problems = []
    wanted = source.resolve(spec.machine)
    if wanted not in target.machines:
        problems.append(
            f"machine type {wanted} is not built into QEMU {target.version} ({target.binary}): choose a build "
            "whose -machine help lists it"
        )
    elif target.resolve(spec.machine) != wanted:
        problems.append(
            f"machine type {spec.machine} is an alias of {wanted} in QEMU {source.version} but of "
            f"{target.resolve(spec.machine)} in QEMU {target.version}: start the VM with the versioned type "
            f"{wanted}, which the new build keeps"
        )
    if spec.accel not in target.accels:
        problems.append(f"accelerator {spec.accel} is not built into QEMU {target.version} ({target.binary})")
    if backend_object(spec) not in target.objects:
        problems.append(f"memory backend {backend_object(spec)} is not built into QEMU {target.version}")
    return problems
