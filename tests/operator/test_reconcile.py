"""Single reconcile passes over a fake writer: what each situation writes, and when the next pass is due."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from hostrefresh.operator.reconcile_plan import reconcile_plan
from hostrefresh.operator.reconcile_refresh import CLAIM_RETRY_SECONDS, reconcile_refresh
from hostrefresh.operator.snapshot import BACKLOG_RETRY_SECONDS
from hostrefresh.operator.state import OperatorState
from hostrefresh.operator.views import PeerView

from .fakes import FakeWriter, caches, operator_state, plan_body, refresh_body
from .helpers import started


async def _settled(state: OperatorState) -> None:
    """Let the Events posted beside the pass be written."""
    await asyncio.gather(*state.background)


def _under_way(phase: str) -> dict[str, Any]:
    """A refresh granted a moment ago, its agent at ``phase``."""
    now = datetime.now(UTC).isoformat()
    status = started(phase, phase)
    status.update(startedAt=now, phaseTimestamps={phase: now, "Preflight": now})
    return status


@dataclass(frozen=True)
class RefreshCase:
    id: str
    body: dict[str, Any]
    writes: list[str]  # kinds of writes, in order
    next_pass: float | None
    writer: dict[str, Any] = field(default_factory=dict)
    backlog: int = 0
    replaced: bool = False


REFRESH_CASES = [
    RefreshCase(
        "fresh-refresh-is-claimed-granted-and-marked",
        refresh_body(),
        ["claim", "refresh_status", "marks", "event"],
        5.0,
    ),
    RefreshCase("no-finalizer-yet-nothing-happens", refresh_body(finalizer=False), [], None),
    RefreshCase(
        "node-held-by-another-refresh-nothing-written",
        refresh_body(),
        ["claim"],
        CLAIM_RETRY_SECONDS,
        writer={"holder": "hr-other"},
    ),
    RefreshCase(
        "status-conflict-stops-the-pass", refresh_body(), ["claim", "refresh_status"], None, writer={"conflict": True}
    ),
    RefreshCase("echo-of-our-own-write-is-skipped", refresh_body(), [], 2.0, replaced=True),
    RefreshCase(
        "backlogged-first-visit-writes-its-wait",
        refresh_body(),
        ["refresh_status"],
        BACKLOG_RETRY_SECONDS,
        backlog=50,
    ),
    RefreshCase(
        "backlogged-after-first-visit-writes-nothing",
        refresh_body(status={"phase": "Pending", "directive": "Wait"}),
        [],
        BACKLOG_RETRY_SECONDS,
        backlog=50,
    ),
    RefreshCase(
        "under-way-writes-its-conditions-and-restores-its-marks",
        refresh_body(status=_under_way("Migrating")),
        ["refresh_status", "marks"],
        5.0,
    ),
    RefreshCase(
        "ended-refresh-is-not-looked-at-again-without-an-event",
        refresh_body(status={**started("Succeeded"), "directive": "Proceed", "completedAt": "2026-11-24T12:00:00Z"}),
        ["refresh_status"],
        None,
    ),
]


@pytest.mark.parametrize("case", REFRESH_CASES, ids=lambda c: c.id)
async def test_refresh_pass(case: RefreshCase) -> None:
    writer = FakeWriter(**case.writer)
    state = operator_state(writer, refresh_interval=2.0, follow_interval=5.0)
    state.caches = caches(datetime.now(UTC))
    state.latest_refresh["hr-a"] = case.body
    writer.in_flight = case.backlog
    if case.replaced:
        state.replaced["hr-a"] = case.body["metadata"]["resourceVersion"]
    again = await reconcile_refresh(state, "hr-a")
    await _settled(state)
    assert writer.kinds() == case.writes, writer.calls
    if case.next_pass is None:
        assert again is None
    else:
        assert again == pytest.approx(case.next_pass, abs=0.01)


async def test_start_pacing_grants_in_order_and_the_second_waits_for_its_slot() -> None:
    writer = FakeWriter()
    state = operator_state(writer, max_starts_per_second=1.0)
    now = datetime.now(UTC)
    state.caches = caches(now, ("node-a", "node-b"))
    state.latest_refresh["hr-a"] = refresh_body("hr-a", "node-a")
    state.latest_refresh["hr-b"] = refresh_body("hr-b", "node-b")
    assert await reconcile_refresh(state, "hr-a") == pytest.approx(5.0)
    again = await reconcile_refresh(state, "hr-b")
    await _settled(state)
    assert again is not None and 0.9 < again <= 1.01, "comes back when its slot is due"
    status_b = [c[2] for c in writer.calls if c[0] == "refresh_status" and c[1] == "hr-b"]
    assert status_b and status_b[0]["directive"] == "Wait"
    assert ("claim", "node-b", "hr-b") not in writer.calls


async def test_a_busy_node_is_not_claimed() -> None:
    writer = FakeWriter()
    state = operator_state(writer)
    now = datetime.now(UTC)
    state.caches = caches(now, peers={"node-a": [PeerView("hr-other", now, started=True, terminal=False)]})
    state.latest_refresh["hr-a"] = refresh_body()
    await reconcile_refresh(state, "hr-a")
    await _settled(state)
    assert writer.kinds() == ["refresh_status", "event"]
    assert writer.calls[0][2]["directive"] == "Wait"


@dataclass(frozen=True)
class PlanCase:
    id: str
    spec: dict[str, Any]
    created: int
    next_pass: float
    config: dict[str, Any] = field(default_factory=dict)
    backlog: int = 0


PLAN_CASES = [
    PlanCase("canary-first", {"canary": 1, "maxUnavailable": 2}, 1, 1.0),
    PlanCase("a-wave-of-max-unavailable", {"canary": 0, "maxUnavailable": 2}, 2, 1.0),
    PlanCase(
        "pacing-creates-what-may-start-now-and-comes-back",
        {"canary": 0, "maxUnavailable": 3},
        2,
        0.5,
        config={"max_starts_per_second": 2.0},
    ),
    PlanCase("backlog-creates-nothing", {"canary": 0, "maxUnavailable": 3}, 0, BACKLOG_RETRY_SECONDS, backlog=50),
    PlanCase("paused-creates-nothing", {"canary": 0, "maxUnavailable": 3, "paused": True}, 0, 1.0),
]


@pytest.mark.parametrize("case", PLAN_CASES, ids=lambda c: c.id)
async def test_plan_pass(case: PlanCase) -> None:
    writer = FakeWriter(in_flight=case.backlog)
    state = operator_state(writer, plan_interval=1.0, **case.config)
    state.caches = caches(datetime.now(UTC), ("node-a", "node-b", "node-c"))
    state.latest_plan["fleet"] = plan_body(**case.spec)
    again = await reconcile_plan(state, "fleet")
    await _settled(state)
    created = [c[1] for c in writer.calls if c[0] == "create"]
    assert len(created) == case.created, writer.calls
    assert again == pytest.approx(case.next_pass, abs=0.01)
    status = next(c[2] for c in writer.calls if c[0] == "plan_status")
    assert status["active"] == case.created
    assert status["pending"] == 3 - case.created
    assert sorted(state.plan_ahead["fleet"]) == sorted(created), "created children count before the watch shows them"
    assert len(state.refreshes) == case.created, "each created child gets its first pass at once"
    for child in created:
        assert state.latest_refresh[child]["metadata"]["name"] == child


async def test_forgetting_a_refresh_drops_everything_kept_about_it() -> None:
    writer = FakeWriter()
    state = operator_state(writer)
    state.caches = caches(datetime.now(UTC))
    state.latest_refresh["hr-a"] = refresh_body()
    state.refreshes.add("hr-a")
    await reconcile_refresh(state, "hr-a")
    await _settled(state)
    state.unvisited["hr-a"] = 1.0
    state.plan_ahead.setdefault("fleet", {})
    state.forget_refresh("hr-a", "fleet")
    assert "hr-a" not in state.latest_refresh
    assert "hr-a" not in state.released and "hr-a" not in state.replaced and "hr-a" not in state.unvisited
    assert state.pacer.slot("hr-a") is None
    assert len(state.refreshes) == 0
