"""RefreshPlan wave planning."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from hostrefresh.api import Phase, RefreshPlanSpec, RefreshPlanStatus
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.views import AgentView, NodeView
from hostrefresh.operator.waves import (
    OwnedRefresh,
    PlanInputs,
    counts_only,
    merge_ahead,
    overlapping_claims,
    plan,
    refresh_name,
    resolve_count,
    spread_by_zone,
)

from .helpers import T0


def spec(**kw: Any) -> RefreshPlanSpec:
    base: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {"pool": "x"}},
        "target": {
            "version": "2.0",
            "kernel": "/k",
            "checksum": "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
        },
        "soakSeconds": 0,
    }
    base.update(kw)
    return RefreshPlanSpec.model_validate(base)


def nodes(n: int, zones: int = 1) -> tuple[NodeView, ...]:
    return tuple(NodeView(f"n{i:02d}", labels={"topology.kubernetes.io/zone": f"z{i % zones}"}) for i in range(n))


def run(s: RefreshPlanSpec, ns: tuple[NodeView, ...], owned: tuple[OwnedRefresh, ...] = (), now: Any = T0) -> Any:
    agents = {n.name: AgentView(renewed_at=now) for n in ns}
    return plan(PlanInputs("p", 1, s, RefreshPlanStatus(), ns, agents, owned, now))


def done(node: str, version: str = "2.0", phase: Phase = Phase.SUCCEEDED, at: Any = T0) -> OwnedRefresh:
    return OwnedRefresh(refresh_name("p", node, version), node, version, phase, completed_at=at)


def active(node: str, phase: Phase = Phase.MIGRATING, degraded: bool = False) -> OwnedRefresh:
    return OwnedRefresh(refresh_name("p", node, "2.0"), node, "2.0", phase, degraded=degraded)


@pytest.mark.parametrize(
    ("value", "total", "expected"), [(3, 20, 3), ("10%", 20, 2), ("1%", 20, 1), ("100%", 7, 7), (None, 5, None)]
)
def test_resolve_count(value: Any, total: int, expected: int | None) -> None:
    assert resolve_count(value, total) == expected


def test_canary_goes_alone() -> None:
    d = run(spec(maxUnavailable=3, canary=1), nodes(20))
    assert d.start == ["n00"]
    d = run(spec(maxUnavailable=3, canary=1), nodes(20), (active("n00"),))
    assert d.start == []


def test_after_the_canary_fill_up_to_max_unavailable() -> None:
    d = run(spec(maxUnavailable=3, canary=1), nodes(20), (done("n00", at=T0 - timedelta(seconds=1)),))
    assert d.start == ["n01", "n02", "n03"]
    d = run(spec(maxUnavailable=3, canary=1), nodes(20), (done("n00"), active("n01"), active("n02")))
    assert d.start == ["n03"]


def test_soak_holds_the_slot() -> None:
    s = spec(maxUnavailable=1, canary=0, soakSeconds=600)
    assert run(s, nodes(3), (done("n00", at=T0 - timedelta(seconds=10)),)).start == []
    assert run(s, nodes(3), (done("n00", at=T0 - timedelta(seconds=601)),)).start == ["n01"]


def test_zones_are_spread_and_limited() -> None:
    ordered = [n.name for n in spread_by_zone(list(nodes(6, zones=3)))]
    assert ordered == ["n00", "n01", "n02", "n03", "n04", "n05"]
    d = run(spec(maxUnavailable=4, canary=0, maxUnavailablePerZone=1), nodes(6, zones=2))
    assert d.start == ["n00", "n01"]


def test_pause_failure_threshold_health_gate_and_window() -> None:
    assert run(spec(paused=True, canary=0), nodes(3)).start == []
    failed = run(spec(canary=0, failureThreshold=1), nodes(3), (done("n00", phase=Phase.ROLLED_BACK),))
    assert failed.start == [] and failed.status.paused
    assert failed.status.paused_reason and "failureThreshold" in failed.status.paused_reason
    troubled = run(spec(canary=0, maxUnavailable=3), nodes(3), (active("n00", Phase.ROLLING_BACK),))
    assert troubled.start == []
    window = [{"schedule": "0 3 * * *", "duration": "1h"}]
    outside = run(spec(canary=0, maintenanceWindows=window), nodes(3), now=T0)
    assert outside.start == []
    inside = run(spec(canary=0, maintenanceWindows=window), nodes(3), now=T0.replace(hour=3, minute=30))
    assert inside.start == ["n00"]


def test_nodes_failing_gates_wait() -> None:
    ns = (NodeView("n00", ready=False), NodeView("n01"))
    assert run(spec(canary=0, maxUnavailable=2), ns).start == ["n01"]


def test_target_change_restarts_the_rollout_and_lets_running_finish() -> None:
    owned = (done("n00", version="1.0"), OwnedRefresh("old-n01", "n01", "1.0", Phase.MIGRATING))
    d = run(spec(canary=0, maxUnavailable=2), nodes(3), owned)
    assert d.start == ["n00"]  # n01's old-target refresh still occupies a slot
    assert d.status.target_version == "2.0"


def test_complete_rollout_is_ready() -> None:
    d = run(spec(canary=1), nodes(2), (done("n00"), done("n01")))
    ready = d.status.conditions[0]
    assert (ready.type, str(ready.status), ready.reason) == ("Ready", "True", Reason.ROLLOUT_COMPLETE)
    assert d.status.succeeded == 2 and d.status.pending == 0


def test_counts_only_tells_counter_moves_from_state_changes() -> None:
    first = run(spec(maxUnavailable=2, canary=0), nodes(6)).status
    more = first.model_copy(update={"active": first.active + 1, "pending": first.pending - 1})
    assert counts_only(first, more)
    paused = first.model_copy(update={"paused": True, "paused_reason": "spec.paused"})
    assert not counts_only(first, paused)
    assert not counts_only(first, first.model_copy(update={"waves_started": first.waves_started + 1}))
    assert not counts_only(first, first.model_copy(update={"conditions": first.conditions[1:]}))


def child(phase: Phase | None, name: str = "c") -> OwnedRefresh:
    return OwnedRefresh(name, "n00", "2.0", phase)


@pytest.mark.parametrize(
    ("indexed", "ahead", "planned_phase", "stays_ahead"),
    [
        # created, the watch has not shown it yet: planning counts it, it stays ahead
        (None, None, None, True),
        # the watch shows the new child (any phase): the watch's view wins
        (Phase.PENDING, None, Phase.PENDING, False),
        # a terminal phase just written, the watch still shows the step before: the written phase counts
        (Phase.VERIFYING, Phase.SUCCEEDED, Phase.SUCCEEDED, True),
        # the watch caught up
        (Phase.SUCCEEDED, Phase.SUCCEEDED, Phase.SUCCEEDED, False),
        # the watch shows a later (terminal) phase than the one written: nothing follows it
        (Phase.ROLLED_BACK, Phase.ROLLING_BACK, Phase.ROLLED_BACK, False),
        (Phase.MIGRATING, Phase.ROLLING_BACK, Phase.ROLLING_BACK, True),
    ],
)
def test_merge_ahead_prefers_own_writes_until_the_watch_shows_them(
    indexed: Phase | None, ahead: Phase | None, planned_phase: Phase | None, stays_ahead: bool
) -> None:
    index = {} if indexed is None else {"c": child(indexed)}
    owned, still = merge_ahead({**index, "other": child(Phase.MIGRATING, "other")}, {"c": child(ahead)})
    by_name = {o.name: o for o in owned}
    assert by_name["c"].phase == planned_phase
    assert by_name["other"].phase == Phase.MIGRATING
    assert ("c" in still) is stays_ahead
    assert len(owned) == 2


@pytest.mark.parametrize(("canary", "fleet"), [(5, 3), (1000, 1), (3, 3)])
def test_a_canary_larger_than_the_fleet_finishes_and_says_so(canary: int, fleet: int) -> None:
    s, ns = spec(canary=canary, maxUnavailable=2), nodes(fleet)
    owned: dict[str, OwnedRefresh] = {}
    for _ in range(fleet + 2):
        decision = run(s, ns, tuple(owned.values()), now=T0 + timedelta(hours=1))
        for node in decision.start:
            owned[node] = done(node, at=T0)
        if decision.status.succeeded == fleet:
            break
    assert decision.status.succeeded == fleet, "the rollout hung"
    ready = next(c for c in decision.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    progressing = next(c for c in decision.status.conditions if c.type == "Progressing")
    assert ("spec.canary" in progressing.message) == (canary > fleet), progressing.message


def test_the_canary_note_shows_while_rolling_out() -> None:
    decision = run(spec(canary=5), nodes(3))
    assert decision.start == ["n00"]
    progressing = next(c for c in decision.status.conditions if c.type == "Progressing")
    assert "spec.canary 5 is more than the 3 selected node(s): every node is a canary" in progressing.message


def test_a_selector_that_matches_nothing_is_stalled_and_says_so() -> None:
    decision = run(spec(), ())
    assert decision.start == [] and decision.status.nodes == 0
    stalled = next(c for c in decision.status.conditions if c.type == "Stalled")
    assert stalled.status == "True" and stalled.reason == Reason.NO_NODES
    assert "matches no node" in stalled.message


@pytest.mark.parametrize(
    ("plan_name", "node"),
    [("p" * 63, "n" * 253), ("a" * 60 + "b", "c." * 120 + "d"), ("a" * 61, "c." * 120 + "d"), ("x", "y" * 240 + "-z")],
)
def test_refresh_name_is_a_valid_object_name(plan_name: str, node: str) -> None:
    name = refresh_name(plan_name, node, "2.0")
    assert len(name) <= 253
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", name), name


def test_a_retried_failure_is_kept_as_the_record_and_its_node_refreshed_again() -> None:
    s = spec(maxUnavailable=2, failureThreshold=1)
    failed = done("n00", phase=Phase.FAILED)
    halted = run(s, nodes(2), (failed, done("n01")))
    assert halted.start == [] and halted.status.failed == 1 and halted.status.paused
    # `kubectl hostrefresh retry` marked it: the plan no longer counts it, and starts its node again
    # under the name of a first retry, saying which refresh it retries.
    retried = OwnedRefresh(failed.name, "n00", "2.0", Phase.FAILED, completed_at=T0, retried=True)
    again = run(s, nodes(2), (retried, done("n01")))
    assert again.start == ["n00"] and again.status.failed == 0 and not again.status.paused
    assert again.retries == {"n00": (1, failed.name)}
    assert refresh_name("p", "n00", "2.0", 1) != failed.name
    # The retry failed as well and was retried in turn: the second retry has a name of its own.
    second = OwnedRefresh(refresh_name("p", "n00", "2.0", 1), "n00", "2.0", Phase.ROLLED_BACK, completed_at=T0)
    assert run(s, nodes(2), (retried, second, done("n01"))).status.failed == 1
    marked = OwnedRefresh(second.name, "n00", "2.0", Phase.ROLLED_BACK, completed_at=T0 + timedelta(1), retried=True)
    third = run(s, nodes(2), (retried, marked, done("n01")))
    assert third.retries == {"n00": (2, second.name)}


def _labelled(n: int, pool: str = "x") -> tuple[NodeView, ...]:
    return tuple(NodeView(f"n{i:02d}", labels={"pool": pool}) for i in range(n))


def test_an_older_plan_with_another_target_keeps_the_nodes_both_select() -> None:
    ns = _labelled(4)
    older = spec(target={**spec().target.to_json(), "version": "3.0"}, nodeSelector={"matchLabels": {"pool": "x"}})
    others = [("older", "2026-01-01T00:00:00Z", "3.0", older), ("same-target", "2026-01-01T00:00:00Z", "2.0", older)]
    claimed = overlapping_claims("p", "2026-02-01T00:00:00Z", "2.0", ns, others)
    assert claimed == dict.fromkeys(["n00", "n01", "n02", "n03"], "older")
    # ... and the older plan, seeing the newer one, takes them all the same: never both.
    assert (
        overlapping_claims("older", "2026-01-01T00:00:00Z", "3.0", ns, [("p", "2026-02-01T00:00:00Z", "2.0", spec())])
        == {}
    )
    agents = {n.name: AgentView(renewed_at=T0) for n in ns}
    inputs = PlanInputs("p", 1, spec(maxUnavailable=2, canary=0), RefreshPlanStatus(), ns, agents, (), T0)
    d = plan(replace(inputs, claimed={"n00": "older", "n01": "older"}))
    assert d.start == ["n02", "n03"]
    degraded = next(c for c in d.status.conditions if c.type == "Degraded")
    assert degraded.reason == Reason.OVERLAPPING_PLAN and "RefreshPlan older" in degraded.message, degraded
    assert "n00, n01" in degraded.message and "spec.nodeSelector" in degraded.message
    d = plan(replace(inputs, claimed=dict.fromkeys(["n00", "n01", "n02", "n03"], "older")))
    assert d.start == []
    stalled = next(c for c in d.status.conditions if c.type == "Stalled")
    assert stalled.status == "True" and stalled.reason == Reason.OVERLAPPING_PLAN, stalled


def test_max_unavailable_counts_refreshes_this_plan_did_not_start() -> None:
    ns = _labelled(5)
    agents = {n.name: AgentView(renewed_at=T0) for n in ns}
    inputs = PlanInputs("p", 1, spec(maxUnavailable=2, canary=0), RefreshPlanStatus(), ns, agents, (), T0)
    assert plan(inputs).start == ["n00", "n01"]
    assert plan(replace(inputs, busy_elsewhere=frozenset({"n03"}))).start == ["n00"]
    assert plan(replace(inputs, busy_elsewhere=frozenset({"n03", "n04"}))).start == []
    assert plan(replace(inputs, busy_elsewhere=frozenset({"n00"}))).start == ["n01"]  # and never on a busy node
