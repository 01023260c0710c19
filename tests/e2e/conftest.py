"""Fixtures for end-to-end tests: the real control plane with CRDs and the agents' namespace."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostrefresh.controlplane import ControlPlane
from hostrefresh.sim.guest.lab import GuestLab

from .harness import Cluster, ensure_namespace


@pytest.fixture
def lab() -> Iterator[GuestLab]:
    """Real QEMU test guests for a test; fails if the test leaves any of their processes behind."""
    if shutil.which("qemu-system-x86_64") is None or shutil.which("unshare") is None:
        pytest.skip("qemu-system-x86_64 and unshare are needed")
    lab = GuestLab()
    yield lab
    strays = asyncio.run(lab.close())
    assert not strays, f"processes left behind by the test: {strays}"


@pytest.fixture
def cluster(crds: ControlPlane, tmp_path: Path) -> Cluster:
    ensure_namespace(crds)
    return Cluster(crds, tmp_path)
