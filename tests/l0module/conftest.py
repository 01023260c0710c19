"""Fixtures for the l0module tests: a fresh simulated L0 per test, image files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hostrefresh.l0._l0_cffi as ext
import pytest

from hostrefresh.l0 import L0, Image, open_l0, sim_create

ROOT = Path(__file__).resolve().parents[2]
L0MODULE = ROOT / "l0module"
GiB = 1 << 30


@pytest.fixture(autouse=True, scope="session")
def _fresh_extension() -> None:
    """Refuse to test a stale extension: the editable install compiles C only at pip time."""
    so = Path(ext.__file__)
    newest = max(p.stat().st_mtime for p in [*L0MODULE.glob("src/*"), *L0MODULE.glob("include/*")])
    if so.stat().st_mtime < newest:
        pytest.exit(f"{so.name} is older than l0module sources; rerun `pip install -e '.[test]'`", 2)


@pytest.fixture
def sim_path(tmp_path: Path) -> Path:
    return tmp_path / "node.l0"


@pytest.fixture
def l0(sim_path: Path) -> Iterator[L0]:
    """A simulated L0 with 8 CPUs and 8 GiB, freshly powered on."""
    sim_create(sim_path, cpus=8, memory_bytes=8 * GiB, durable=False)
    with open_l0("sim", sim_path) as handle:
        yield handle


@pytest.fixture
def image(tmp_path: Path) -> Image:
    kernel = tmp_path / "vmlinuz"
    initrd = tmp_path / "initrd.img"
    kernel.write_bytes(b"\x7fELF new host kernel" * 100)
    initrd.write_bytes(b"initramfs" * 50)
    return Image.from_files(kernel, initrd, cmdline="console=ttyS0 hostrefresh.role=target")
