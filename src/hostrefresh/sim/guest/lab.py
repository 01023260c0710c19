"""A throwaway place to run test-guest VMs (tests, benchmark, demos) that cleans up after itself.

Why: unix socket paths must stay short (sun_path), shared RAM belongs on tmpfs (/dev/shm), and no QEMU
may outlive a test run; one object owns all three concerns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from pathlib import Path

from hostrefresh.nodeagent.migrate import (
    HandoverHooks,
    MigrationPolicy,
    QemuMigrator,
    VmSpec,
    choose_accel,
)
from hostrefresh.sim.guest.build import guest_image


def kill_processes_mentioning(marker: str) -> list[int]:
    """SIGKILL every process whose command line contains `marker`; returns their pids."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            stat = (entry / "stat").read_text()
            if marker in cmdline and stat.rsplit(")", 1)[-1].split()[0] != "Z":
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


class GuestLab:
    """Runtime dir under /tmp, shared-RAM dir under /dev/shm, and every migrator made from them."""

    def __init__(self, shm_root: Path = Path("/dev/shm")) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hrt-", dir="/tmp"))
        self.shm = Path(tempfile.mkdtemp(prefix="hrt-", dir=shm_root))
        self.image = guest_image()
        self.migrators: list[QemuMigrator] = []

    def migrator(self, policy: MigrationPolicy | None = None, hooks: HandoverHooks | None = None) -> QemuMigrator:
        m = QemuMigrator(self.root, policy, hooks)
        self.migrators.append(m)
        return m

    def spec(
        self,
        name: str,
        *,
        shared: bool = True,
        memory_mib: int = 64,
        accel: str | None = None,
        append: str = "pace=0",
        qemu: str = "",
    ) -> VmSpec:
        return VmSpec(
            name=name,
            memory_mib=memory_mib,
            kernel=str(self.image),
            append=append,
            mem_path=str(self.shm / f"{name}.ram") if shared else None,
            accel=accel or choose_accel(),
            qemu=qemu,
        )

    async def close(self) -> list[int]:
        """Destroy every VM; returns pids that had to be killed as strays (should be empty)."""
        for m in self.migrators:
            with contextlib.suppress(Exception):
                await m.destroy_all()
        strays = kill_processes_mentioning(str(self.root))
        await asyncio.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.shm, ignore_errors=True)
        return strays
