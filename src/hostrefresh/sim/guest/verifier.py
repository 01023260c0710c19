"""Prove over QMP that a test guest runs and its memory pattern is intact and advancing.

Memory is read with `pmemsave` (QEMU writes guest-physical memory to a file on this machine), which
works for both RAM backends. The guest is paused while its pages are read so the control block and the
pages are one consistent snapshot, then resumed only if it was running before.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from hostrefresh.nodeagent.qmpsession import QmpSession, qmp_session
from hostrefresh.sim.guest.pattern import (
    CONTROL_ADDR,
    CONTROL_SIZE,
    ControlBlock,
    PatternReport,
    check_pages,
    sample_ranges,
)


class VerificationError(AssertionError):
    """The guest is not running, not advancing, or its memory pattern is damaged."""


class GuestVerifier:
    """Reads one test guest through the QMP monitor at `qmp_socket`."""

    def __init__(self, qmp_socket: Path, scratch_dir: Path | None = None) -> None:
        self.qmp_socket = qmp_socket
        self.scratch_dir = scratch_dir or Path(tempfile.gettempdir())

    def _scratch(self) -> Path:
        return self.scratch_dir / f".hrverify-{os.getpid()}-{id(self)}.bin"

    async def _control(self, qmp: QmpSession) -> ControlBlock:
        path = self._scratch()
        try:
            return ControlBlock.parse(await qmp.pmemsave(CONTROL_ADDR, CONTROL_SIZE, path))
        finally:
            path.unlink(missing_ok=True)

    async def read_control(self) -> ControlBlock:
        """The guest's control block, read without pausing it."""
        async with qmp_session(self.qmp_socket) as qmp:
            return await self._control(qmp)

    async def wait_dirtied(self, passes: int = 1, timeout: float = 120.0) -> ControlBlock:
        """Wait until the guest has written all its covered RAM `passes` times."""
        deadline = time.monotonic() + timeout
        while True:
            ctl = await self.read_control()
            if ctl.valid and ctl.passes_completed >= passes:
                return ctl
            if time.monotonic() > deadline:
                raise VerificationError(f"guest did not complete {passes} pass(es) in {timeout}s: {ctl}")
            await asyncio.sleep(0.05)

    async def verify(self, *, max_bytes: int | None = None, advance_timeout: float = 10.0) -> PatternReport:
        """Check control block and pages (all, or about `max_bytes` spread evenly), then liveness."""
        report = PatternReport()
        path = self._scratch()
        async with qmp_session(self.qmp_socket) as qmp:
            was_running = await qmp.status() == "running"
            if was_running:
                await qmp.execute("stop")
            try:
                ctl = await self._control(qmp)
                report.control = ctl
                report.progress_before = ctl.progress
                if not ctl.valid:
                    report.errors.append(f"control block invalid: {ctl}")
                else:
                    for index, addr, size in sample_ranges(ctl, max_bytes, chunk=4 << 20):
                        data = await qmp.pmemsave(addr, size, path)
                        report.errors.extend(check_pages(ctl, index, addr, data))
                        report.pages_checked += size // 4096
                        if len(report.errors) >= 10:
                            break
            finally:
                path.unlink(missing_ok=True)
                if was_running:
                    await qmp.execute("cont")
            if not was_running:
                report.errors.append("guest was not running")
                report.progress_after = report.progress_before
                return report
            deadline = time.monotonic() + advance_timeout
            while True:
                report.progress_after = (await self._control(qmp)).progress
                if report.advancing or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
        return report

    async def assert_ok(self, *, max_bytes: int | None = None) -> PatternReport:
        """`verify()`, raising `VerificationError` with the findings unless everything holds."""
        report = await self.verify(max_bytes=max_bytes)
        if not report.ok:
            raise VerificationError(
                f"guest at {self.qmp_socket}: advancing={report.advancing} errors={report.errors[:10]}"
            )
        return report
