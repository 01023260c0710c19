"""The fault campaign's own control plane (it restarts kube-apiserver and etcd), its scope and report."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hostrefresh.controlplane import ControlPlane
from tests.e2e.harness import ensure_namespace

from .ledger import ScenarioRecord, report, write_report

RECORDS: list[ScenarioRecord] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hostrefresh fault campaign")
    group.addoption("--faults-all", action="store_true", help="run the whole fault campaign (make faults)")
    group.addoption("--faults-report", default=None, help="write the campaign's report (JSON) here")


@pytest.fixture(scope="session")
def campaign_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of the campaign's own: scenarios crash and restart its processes."""
    cp = ControlPlane(tmp_path_factory.mktemp("campaign-controlplane"))
    cp.start()
    try:
        cp.install_crds()
        ensure_namespace(cp)
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def say_now(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Writes a line to the terminal at once, whatever pytest captures (fd-level capture redirects
    even sys.__stderr__'s descriptor), so that each violation is seen when it happens."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    reporter = pytestconfig.pluginmanager.getplugin("terminalreporter")

    def say(line: str) -> None:
        if capture is None or reporter is None:
            print(line, flush=True)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return say


@pytest.fixture(scope="session")
def campaign_full(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--faults-all"))


COMMIT = pytest.StashKey[str]()


def _commit() -> str:
    """The commit the campaign ran (with "+dirty" when the tree had changes)."""
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False)
    commit = head.stdout.strip() or "unknown"
    return f"{commit}+dirty" if dirty.stdout.strip() else commit


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _bench_provenance() -> ModuleType:
    """bench/provenance.py, the one definition of a result file's provenance (bench/ is no package)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "provenance.py"
    spec = importlib.util.spec_from_file_location("bench_provenance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _provenance(session: pytest.Session) -> dict[str, Any]:
    accel = "KVM" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "TCG only"
    command = "python -m pytest " + " ".join(session.config.invocation_params.args)
    prov: dict[str, Any] = _bench_provenance().provenance(command_line=command)
    started = session.config.stash.get(COMMIT, "")
    if started:  # what ran: the commit when the campaign started
        prov["commit"] = started.replace("+dirty", "-dirty")
    return {
        "provenance": prov,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": (
            f"{_cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()} "
            f"{platform.machine()}, accelerator {accel}"
        ),
        "command": command,
    }


def pytest_configure(config: pytest.Config) -> None:
    """The commit is taken when the campaign starts: what ran, whatever is committed while it runs."""
    config.stash[COMMIT] = _commit()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RECORDS:
        return
    scope = "whole" if session.config.getoption("--faults-all") else "bounded"
    data = {**report(RECORDS, scope, session.config.stash.get(COMMIT, _commit())), **_provenance(session)}
    target = session.config.getoption("--faults-report")
    if target:
        write_report(Path(target), data)
    lines = [
        f"fault campaign ({scope}): {data['scenarios']} scenarios, {data['faultsInjected']} faults injected, "
        f"{data['refreshes']} refreshes, {data['vmsChecked']} VMs checked, {data['invariantChecks']} invariant "
        f"checks, {data['violations']} violations, {data['seconds']} s"
    ]
    for r in data["results"]:
        lines.append(
            f"  {r['name']:<24} {r['faultsInjected']:>4} faults {r['refreshes']:>4} refreshes "
            f"{r['vmsChecked']:>4} VMs {r['invariantChecks']:>6} checks {len(r['violations'])} violations"
        )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
