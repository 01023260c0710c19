"""The fault campaign: every scenario's faults injected into real processes, every invariant checked.

``make test`` runs the bounded matrix; ``make faults`` the whole one and records its report in
bench/results/faults.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hostrefresh.controlplane import ControlPlane

from .conftest import RECORDS
from .ledger import Ledger, ScenarioRecord
from .scenarios import SCENARIOS, WHOLE_ONLY, Scenario
from .world import FaultWorld

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The bounded matrix's scenarios, and with --faults-all the whole campaign's too."""
    if "scenario" in metafunc.fixturenames:
        scenarios = SCENARIOS + (WHOLE_ONLY if metafunc.config.getoption("--faults-all") else [])
        metafunc.parametrize("scenario", scenarios, ids=[s.name for s in scenarios])


def test_scenario_holds_every_invariant(
    campaign_cp: ControlPlane, campaign_full: bool, say_now: Callable[[str], None], tmp_path: Path, scenario: Scenario
) -> None:
    record = ScenarioRecord(scenario.name, scenario.fault_class)
    RECORDS.append(record)
    world = FaultWorld(campaign_cp, tmp_path, Ledger(record, say_now))
    started = time.monotonic()
    try:
        scenario.run(world, campaign_full)
    except BaseException as exc:  # said at once too: the report of a long campaign comes at its end
        say_now(f"ERROR in {scenario.name}: {exc!r}"[:3000])
        raise
    finally:
        record.seconds = time.monotonic() - started
    assert sum(record.faults.values()) > 0, "no fault was injected: the scenario tested nothing"
    assert record.checks > 0 and record.refreshes > 0, "nothing was checked"
    assert not record.violations, "\n".join(record.violations[:20])
