"""RefreshPlan wave planning."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from hostrefresh.api import Phase, RefreshPlanSpec, RefreshPlanStatus
from hostrefresh.api.names import REFRESH_TAINT_KEY
from hostrefresh.api.refreshplan import resolve_count
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.views import AgentView, NodeView, Taint
from hostrefresh.operator.waves import (
    OwnedRefresh,
    PlanInputs,
    cordon_message,
    counts_only,
    held_for_cordon,
    merge_ahead,
    overlapping_claims,
    plan,
    refresh_name,
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


def test_a_canary_another_plan_keeps_hands_its_part_to_the_next_node() -> None:
    # The first node in order is the older plan's: the canary is the next one, not a wait for ever.
    ns = _labelled(4)
    agents = {n.name: AgentView(renewed_at=T0) for n in ns}
    inputs = PlanInputs("p", 1, spec(maxUnavailable=2, canary=1), RefreshPlanStatus(), ns, agents, (), T0)
    d = plan(replace(inputs, claimed={"n00": "older"}))
    assert d.start == ["n01"], d.status.conditions


def test_max_unavailable_counts_refreshes_this_plan_did_not_start() -> None:
    ns = _labelled(5)
    agents = {n.name: AgentView(renewed_at=T0) for n in ns}
    inputs = PlanInputs("p", 1, spec(maxUnavailable=2, canary=0), RefreshPlanStatus(), ns, agents, (), T0)
    assert plan(inputs).start == ["n00", "n01"]
    assert plan(replace(inputs, busy_elsewhere=frozenset({"n03"}))).start == ["n00"]
    assert plan(replace(inputs, busy_elsewhere=frozenset({"n03", "n04"}))).start == []
    assert plan(replace(inputs, busy_elsewhere=frozenset({"n00"}))).start == ["n01"]  # and never on a busy node


def _cordoned(*names: str, n: int = 4) -> tuple[NodeView, ...]:
    return tuple(NodeView(f"n{i:02d}", unschedulable=f"n{i:02d}" in names) for i in range(n))


def _condition(d: Any, type_: str) -> tuple[str, str, str]:
    c = next(c for c in d.status.conditions if c.type == type_)
    return str(c.status), c.reason, c.message


def test_a_cordoned_node_waits_while_the_others_roll_out_and_the_plan_names_it() -> None:
    d = run(spec(canary=0, maxUnavailable=4), _cordoned("n01"))
    assert d.start == ["n00", "n02", "n03"]
    assert d.status.pending == 1 and d.status.active == 3
    status, reason, message = _condition(d, "Progressing")
    assert (status, reason) == ("True", Reason.ROLLING_OUT)
    assert "cordoned and wait: n01" in message and "spec.cordonedNodes: Include" in message, message
    assert _condition(d, "Ready")[0] == "False"


def test_a_plan_left_with_cordoned_nodes_only_waits_for_them_not_stalled_nor_ready() -> None:
    ns = _cordoned("n02", "n03")
    owned = (done("n00", at=T0 - timedelta(hours=1)), done("n01", at=T0 - timedelta(hours=1)))
    d = run(spec(canary=0, maxUnavailable=2), ns, owned)
    assert d.start == []
    assert (d.status.pending, d.status.succeeded, d.status.nodes) == (2, 2, 4)
    status, reason, message = _condition(d, "Progressing")
    assert (status, reason) == ("False", Reason.NODES_CORDONED)
    assert "2 selected node(s) are cordoned and wait: n02, n03" in message
    assert "kubectl uncordon" in message and "spec.cordonedNodes: Include" in message
    assert _condition(d, "Reconciling")[:2] == ("True", Reason.NODES_CORDONED)
    assert _condition(d, "Stalled")[0] == "False"  # a cordon usually ends by itself: not Failed for kstatus
    assert _condition(d, "Ready")[:2] == ("False", Reason.ROLLING_OUT)
    assert not d.status.paused
    # Uncordoned: they start, and once they succeed the plan is Ready.
    d = run(spec(canary=0, maxUnavailable=2), _cordoned(), owned)
    assert d.start == ["n02", "n03"]
    d = run(spec(canary=0, maxUnavailable=2), _cordoned(), (*owned, done("n02"), done("n03")))
    assert _condition(d, "Ready")[:2] == ("True", Reason.ROLLOUT_COMPLETE)


def test_include_refreshes_cordoned_nodes_like_the_others() -> None:
    d = run(spec(canary=0, maxUnavailable=4, cordonedNodes="Include"), _cordoned("n01", "n03"))
    assert d.start == ["n00", "n01", "n02", "n03"]
    assert "cordon" not in _condition(d, "Progressing")[2]
    with pytest.raises(ValueError, match="cordonedNodes"):
        spec(cordonedNodes="Skip")
    assert spec().cordoned_nodes == "Wait"


def test_a_cordoned_node_is_no_canary_and_once_uncordoned_joins_the_rolling_rollout() -> None:
    s = spec(canary=1, maxUnavailable=2)
    d = run(s, _cordoned("n00"))
    assert d.start == ["n01"]  # the next node is the canary: a cordoned one would hold the fleet
    canary = (done("n01", at=T0 - timedelta(hours=1)),)
    # n00 uncordoned after the canary succeeded: it is started with the others, not as a second canary.
    assert run(s, _cordoned(), canary).start == ["n00", "n02"]
    # Still cordoned: the rollout goes on without it.
    assert run(s, _cordoned("n00"), canary).start == ["n02", "n03"]


def test_a_cordon_never_stops_a_refresh_under_way_or_one_already_done() -> None:
    ns = _cordoned("n00", "n01", n=3)
    d = run(spec(canary=0, maxUnavailable=2), ns, (active("n00"), done("n01")))
    assert d.start == ["n02"]
    assert d.status.active == 2 and d.status.succeeded == 1 and d.status.pending == 0
    assert "cordon" not in _condition(d, "Progressing")[2]


def test_only_a_cordon_counts_not_the_operators_own_taint_nor_others() -> None:
    taints = (Taint(REFRESH_TAINT_KEY, "NoSchedule", "other-refresh"), Taint("dedicated", "NoSchedule", "db"))
    ns = (NodeView("n00", taints=taints), NodeView("n01"))
    assert run(spec(canary=0, maxUnavailable=2), ns).start == ["n00", "n01"]
    assert held_for_cordon(spec(), (NodeView("n00", unschedulable=True, taints=taints),)) == ["n00"]
    assert held_for_cordon(spec(cordonedNodes="Include"), (NodeView("n00", unschedulable=True),)) == []


def test_a_cordon_outside_the_window_is_what_the_plan_says_it_waits_for() -> None:
    window = [{"schedule": "0 3 * * *", "duration": "1h"}]
    # Only cordoned nodes pending: the window opening would not help, so the cordon is named.
    only = run(spec(canary=0, maintenanceWindows=window), _cordoned("n00", n=1))
    assert _condition(only, "Progressing")[:2] == ("False", Reason.NODES_CORDONED)
    # Others pending too: the window holds them, and the cordoned node is named as well.
    some = run(spec(canary=0, maintenanceWindows=window), _cordoned("n00", n=2))
    status, reason, message = _condition(some, "Progressing")
    assert (status, reason) == ("False", Reason.WAITING_FOR_WINDOW) and "cordoned and wait: n00" in message


def test_many_cordoned_nodes_are_named_up_to_five() -> None:
    message = cordon_message([f"n{i:02d}" for i in range(8)])
    assert "8 selected node(s)" in message and "n04 and 3 more" in message and "n05" not in message
