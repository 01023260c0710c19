"""Access to the kernel's CPU and memory hotplug files under a configurable sysfs root.

Why an interface: a kernel sysfs write can fail with EBUSY or block for a long time (memory offlining
migrates pages), which plain files in a test directory cannot do. All partitioning code goes through
`SysfsIO`; `RealSysfsIO` issues one write(2) per value exactly like `echo`, keeping the kernel's errno;
`hostrefresh.sim.sysfs.FakeSysfsIO` reproduces the kernel's behaviour on a directory tree,
so tests run the same code path (chosen over FUSE: no kernel module or privileges needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")

CPU_DIR = "devices/system/cpu"
MEMORY_DIR = "devices/system/memory"


class SysfsTimeoutError(TimeoutError):
    """A sysfs write did not return in time; the kernel may still complete it later."""


class SysfsIO(Protocol):
    """Minimal sysfs access; paths are relative to the sysfs root (e.g. "devices/system/cpu")."""

    def read(self, path: str) -> str: ...

    def write(self, path: str, value: str) -> None:
        """Write `value`; raises OSError with the kernel's errno (EBUSY, EINVAL, EPERM, ...)."""
        ...

    def exists(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list[str]: ...


class RealSysfsIO:
    """The kernel's sysfs (root "/sys" in production)."""

    def __init__(self, root: Path = Path("/sys")) -> None:
        self.root = root

    def read(self, path: str) -> str:
        return (self.root / path).read_text().strip()

    def write(self, path: str, value: str) -> None:
        fd = os.open(self.root / path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.root / path))
        except FileNotFoundError:
            return []


async def run_with_timeout(fn: Callable[[], T], timeout: float, on_late: Callable[[], None] | None = None) -> T:
    """Run blocking `fn` in a daemon thread; raise SysfsTimeoutError after `timeout` seconds.

    A daemon thread (not an executor) because a hung kernel write cannot be cancelled: the thread
    must not keep the agent from exiting or occupy a shared pool slot forever. A write that timed out
    may still complete in the kernel: ``on_late`` is called (in the loop) when it returns after all.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, exc: BaseException | None) -> None:
        if future.done():
            return
        if late and on_late is not None:
            on_late()  # a write that timed out has returned after all
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def worker() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (fn(), None)
        except BaseException as exc:
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop may be gone when a hung write returns
            loop.call_soon_threadsafe(settle, *outcome)

    late = False
    threading.Thread(target=worker, name="sysfs-write", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError as exc:
        late = True
        future.add_done_callback(lambda f: None if f.cancelled() else f.exception())  # retrieved: no warning
        raise SysfsTimeoutError(f"sysfs write did not return within {timeout}s") from exc
