"""Conditions as kstatus (Flux, kpt, cli-utils) reads them: a failed or halted refresh or rollout is
Failed (Stalled=True), never InProgress forever; a success is Current; anything on its way InProgress."""

from __future__ import annotations

from typing import Any

from hostrefresh.api import Phase
from hostrefresh.api.meta import Condition
from hostrefresh.operator.lifecycle import decide
from hostrefresh.operator.views import NodeView
from tests.operator.helpers import T0, host_refresh, inputs, started
from tests.operator.test_waves import active, done, nodes, run, spec


def kstatus(generation: int, observed: int | None, conditions: list[Condition]) -> str:
    """cli-utils' generic rules for custom resources (pkg/kstatus/status/generic.go)."""
    if observed is not None and observed < generation:
        return "InProgress"
    by_type = {c.type: str(c.status) for c in conditions}
    if by_type.get("Reconciling") == "True":
        return "InProgress"
    if by_type.get("Stalled") == "True":
        return "Failed"
    return "Current"


def refresh_state(status: dict[str, Any] | None, **spec_fields: Any) -> str:
    d = decide(inputs(host_refresh(status, **spec_fields), now=T0))
    assert d.status.observed_generation == 1
    assert all(c.observed_generation == 1 for c in d.status.conditions)
    return kstatus(1, d.status.observed_generation, d.status.conditions)


def test_host_refresh_states() -> None:
    assert refresh_state(None) == "InProgress"  # waiting to start, or granted now
    assert refresh_state(None, paused=True) == "InProgress"
    assert refresh_state(started("Migrating", "Migrating")) == "InProgress"
    assert refresh_state(started("Verifying", "Verifying", "Done")) == "Current"
    rolled_back = started("RollingBack", "RollingBack", "Done", directive="RollBack")
    assert refresh_state(rolled_back) == "Failed"
    assert refresh_state(started("Retiring", "Retiring", "Failed")) == "Failed"  # past no return: Failed
    assert refresh_state(started("Migrating", "Migrating", "Failed"), failurePolicy="Hold") == "Failed"  # held
    assert refresh_state(started("Migrating", "Migrating", "Failed")) == "InProgress"  # rolling back


def test_stalled_names_the_failure() -> None:
    d = decide(inputs(host_refresh(started("Retiring", "Retiring", "Failed", message="kexec refused")), now=T0))
    stalled = next(c for c in d.status.conditions if c.type == "Stalled")
    assert stalled.reason == "RefreshFailed" and "kexec refused" in stalled.message
    assert str(d.status.phase) == Phase.FAILED


def plan_state(d: Any) -> str:
    return kstatus(1, d.status.observed_generation, d.status.conditions)


def test_plan_states() -> None:
    assert plan_state(run(spec(canary=1), nodes(3))) == "InProgress"
    assert plan_state(run(spec(canary=0), nodes(2), (active("n00"),))) == "InProgress"
    assert plan_state(run(spec(canary=1), nodes(2), (done("n00"), done("n01")))) == "Current"
    halted = run(spec(canary=0, failureThreshold=1), nodes(3), (done("n00", phase=Phase.ROLLED_BACK),))
    assert plan_state(halted) == "Failed"
    ended = run(spec(canary=0, failureThreshold=5), nodes(2), (done("n00"), done("n01", phase=Phase.FAILED)))
    assert plan_state(ended) == "Failed"
    assert plan_state(run(spec(canary=0), ())) == "Failed"  # selects no node: needs a human
    assert plan_state(run(spec(canary=0, paused=True), nodes(2))) == "InProgress"  # a pause is not done
    # Only a cordoned node left: not done (Current would say every node runs the target), not Failed either
    # (a cordon is a drain or a repair that usually ends by itself).
    cordoned = (NodeView("n00"), NodeView("n01", unschedulable=True))
    assert plan_state(run(spec(canary=0), cordoned, (done("n00"),))) == "InProgress"
