"""Fixtures for end-to-end tests: the real control plane with CRDs and the agents' namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostrefresh.controlplane import ControlPlane

from .harness import Cluster, ensure_namespace


@pytest.fixture
def cluster(crds: ControlPlane, tmp_path: Path) -> Cluster:
    ensure_namespace(crds)
    return Cluster(crds, tmp_path)
