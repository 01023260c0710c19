"""Shared fixtures: the real local control plane (session-scoped) and helpers around kubectl."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hostrefresh.controlplane import ControlPlane
from hostrefresh.sim.guest.qemubuilds import QemuBuild, installed_build, other_build


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real etcd + kube-apiserver for the whole session (built on first use, then cached)."""
    cp = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with hostrefresh's CRDs applied and Established."""
    control_plane.install_crds()
    return control_plane


@pytest.fixture(scope="session")
def older_qemu() -> QemuBuild:
    """An older Debian build of the installed QEMU, unpacked beside it (for VMM-only refreshes)."""
    return other_build()


@pytest.fixture(scope="session")
def installed_qemu() -> QemuBuild:
    return installed_build()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-all-tests",
        action="store_true",
        help="fail the run when no test ran or any test was skipped (CI: the real parts must run)",
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not session.config.getoption("--require-all-tests"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    passed = len(reporter.stats.get("passed", [])) if reporter else 0
    if passed == 0 or skipped:
        print(f"\n--require-all-tests: {passed} passed, {skipped} skipped; every test must run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
