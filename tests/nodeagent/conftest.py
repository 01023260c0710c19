"""Fixtures for node-agent tests: fake sysfs trees and QEMU runtimes that never leak processes."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from hostrefresh.sim.guest.lab import GuestLab
from hostrefresh.sim.sysfs import FakeSysfsIO, build_fake_sysfs


@pytest.fixture
def fake_sysfs(tmp_path: Path) -> Iterator[tuple[Path, FakeSysfsIO]]:
    root = tmp_path / "sys"
    build_fake_sysfs(root, cpus=4, memory_blocks=16, block_size=128 << 20)
    io = FakeSysfsIO(root)
    yield root, io
    io.release()  # wake any write left hanging by a `hang` rule


@pytest.fixture
async def qemu_lab() -> AsyncIterator[GuestLab]:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 not installed")
    lab = GuestLab()
    yield lab
    strays = await lab.close()
    assert not strays, f"QEMU processes left behind by the test: {strays}"


@pytest.fixture
def force_tcg(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    def apply() -> None:
        monkeypatch.setenv("HOSTREFRESH_FORCE_TCG", "1")

    return apply
