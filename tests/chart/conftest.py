"""Fixtures of the chart tests: a private helm home, and one release installed in the shared control plane."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hostrefresh.controlplane import ControlPlane
from tests.chart.helpers import CHART_DIR, helm, set_args, unique

#: Label that puts a HostRefresh or RefreshPlan under the target-images policy of the shared release.
TARGET_IMAGES_LABEL = "hostrefresh-chart-test"


@pytest.fixture(scope="session")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@dataclass(frozen=True)
class Release:
    """The chart installed under a unique release name in a unique namespace."""

    cp: ControlPlane
    name: str
    namespace: str
    fullname: str

    @property
    def agent_sa(self) -> str:
        return f"{self.fullname}-agent"

    @property
    def operator_sa(self) -> str:
        return f"{self.fullname}-operator"


def install(cp: ControlPlane, home: Path, name: str, namespace: str, values: dict[str, str] | None = None) -> Release:
    """`helm install` into ``cp`` (pods never start: no kubelet runs; the objects are what counts)."""
    helm(
        "install",
        name,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--create-namespace",
        "--kubeconfig",
        str(cp.kubeconfig),
        *set_args(values),
        home=home,
    )
    return Release(cp, name, namespace, f"{name}-hostrefresh")


@pytest.fixture(scope="session")
def release(crds: ControlPlane, helm_home: Path) -> Release:
    """The chart in the shared control plane. Its CRDs exist already (the ``crds`` fixture): helm
    leaves existing CRDs of a chart's crds/ directory alone, so both can coexist.

    Its target-images and agent-status policies check only objects labelled
    ``TARGET_IMAGES_LABEL=<release>``: other tests in the shared control plane keep their images where
    they like (their agents allow them) and run their agents as the administrator.
    """
    name = unique("hrc")
    selector = {
        f"admissionPolicy.targetImages.objectSelector.matchLabels.{TARGET_IMAGES_LABEL}": name,
        f"admissionPolicy.agentStatus.objectSelector.matchLabels.{TARGET_IMAGES_LABEL}": name,
    }
    return install(crds, helm_home, name, unique("hostrefresh-chart"), selector)
