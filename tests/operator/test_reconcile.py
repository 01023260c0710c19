"""Single reconcile passes over a fake writer: what each situation writes, and when the next pass is due."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from hostrefresh.api import Phase
from hostrefresh.api.names import (
    CLAIM_ANNOTATION,
    HOST_REFRESHED_AT_ANNOTATION,
    HOST_REFRESHED_BY_ANNOTATION,
    HOST_VERSION_KEY,
)
from hostrefresh.operator.reconcile_plan import reconcile_plan
from hostrefresh.operator.reconcile_refresh import CLAIM_RETRY_SECONDS, reconcile_refresh
from hostrefresh.operator.snapshot import BACKLOG_RETRY_SECONDS
from hostrefresh.operator.state import OperatorState
from hostrefresh.operator.views import PeerView
from hostrefresh.operator.waves import OwnedRefresh, refresh_name

from .fakes import TARGET, ApiFailureError, FakeWriter, caches, operator_state, plan_body, refresh_body
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


def _with_timeouts(body: dict[str, Any], **timeouts: int) -> dict[str, Any]:
    body["spec"]["timeouts"] = timeouts
    return body


@dataclass(frozen=True)
class RefreshCase:
    id: str
    body: Callable[[], dict[str, Any]]  # built when the test runs: its timestamps are "now" then
    writes: list[str]  # kinds of writes, in order
    next_pass: float | None
    writer: dict[str, Any] = field(default_factory=dict)
    backlog: int = 0


REFRESH_CASES = [
    RefreshCase(
        "fresh-refresh-is-claimed-granted-and-marked",
        refresh_body,
        ["claim", "refresh_status", "marks", "event", "event"],  # the second about the Node
        5.0,
    ),
    RefreshCase("no-finalizer-yet-nothing-happens", lambda: refresh_body(finalizer=False), [], None),
    RefreshCase(
        "node-held-by-another-refresh-nothing-written",
        refresh_body,
        ["claim"],
        CLAIM_RETRY_SECONDS,
        writer={"holder": "hr-other"},
    ),
    RefreshCase(
        "status-conflict-stops-the-pass",
        refresh_body,
        ["claim", "refresh_status"],
        None,
        writer={"conflict": True},
    ),
    RefreshCase(
        "backlogged-first-visit-writes-its-wait",
        refresh_body,
        ["refresh_status"],
        BACKLOG_RETRY_SECONDS,
        backlog=50,
    ),
    RefreshCase(
        "backlogged-after-first-visit-writes-nothing",
        lambda: refresh_body(status={"phase": "Pending", "directive": "Wait"}),
        [],
        BACKLOG_RETRY_SECONDS,
        backlog=50,
    ),
    RefreshCase(
        "under-way-writes-its-conditions-and-restores-its-marks",
        lambda: refresh_body(status=_under_way("Migrating")),
        ["refresh_status", "marks"],
        5.0,
    ),
    RefreshCase(
        "a-phase-deadline-before-the-next-follow-pass-brings-the-pass-forward",
        lambda: _with_timeouts(refresh_body(status=_under_way("BootingTarget")), bootingTargetSeconds=1),
        ["refresh_status", "marks"],
        1.0,
    ),
    RefreshCase(
        "ended-refresh-is-not-looked-at-again-without-an-event",
        lambda: refresh_body(
            status={**started("RolledBack"), "directive": "RollBack", "completedAt": "2026-11-24T12:00:00Z"}
        ),
        ["refresh_status"],
        None,
    ),
    RefreshCase(
        "a-success-records-what-the-node-runs-and-is-looked-at-again-until-the-node-shows-it",
        lambda: refresh_body(
            status={**started("Succeeded"), "directive": "Proceed", "completedAt": "2026-11-24T12:00:00Z"}
        ),
        ["refresh_status", "marks"],
        5.0,
    ),
]


@pytest.mark.parametrize("case", REFRESH_CASES, ids=lambda c: c.id)
async def test_refresh_pass(case: RefreshCase) -> None:
    writer = FakeWriter(**case.writer)
    state = operator_state(writer, refresh_interval=2.0, follow_interval=5.0)
    state.caches = caches(datetime.now(UTC))
    state.latest_refresh["hr-a"] = case.body()
    writer.in_flight = case.backlog
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


async def test_a_refresh_that_starts_says_so_on_its_node_too() -> None:
    writer = FakeWriter()
    state = operator_state(writer)
    state.caches = caches(datetime.now(UTC))
    state.latest_refresh["hr-a"] = refresh_body()
    await reconcile_refresh(state, "hr-a")
    await _settled(state)
    on_node = [e for e in writer.events if e["involvedObject"]["kind"] == "Node"]
    assert [(e["reason"], e["involvedObject"]) for e in on_node] == [
        ("HostRefreshStarted", {"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "node-a"})
    ]
    assert on_node[0]["message"].startswith("HostRefresh hr-a started: to ")


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


def _ended(name: str = "hr-a") -> dict[str, Any]:
    """Status of a refresh that succeeded and recorded the marks it added to its node."""
    now = datetime.now(UTC).isoformat()
    status = started("Succeeded")
    status.update(
        completedAt=now,
        addedTaints=["hostrefresh.io/refreshing"],
        addedAnnotations=["hostrefresh.io/refreshing", "hostrefresh.io/claimed-by"],
    )
    return status


async def test_an_unmark_that_failed_is_sent_again_at_the_retry_and_followed_until_gone() -> None:
    writer = FakeWriter(fail_marks=1)
    state = operator_state(writer, follow_interval=5.0)
    state.caches = caches(datetime.now(UTC), marked_by="hr-a")
    state.latest_refresh["hr-a"] = refresh_body(status=_ended())
    with pytest.raises(ApiFailureError):
        await reconcile_refresh(state, "hr-a")
    written = next(c[2] for c in writer.calls if c[0] == "refresh_status")
    echo = refresh_body(status=written)
    echo["metadata"]["resourceVersion"] = "8"
    state.latest_refresh["hr-a"] = echo  # the status write's echo
    again = await reconcile_refresh(state, "hr-a")  # the work queue's retry, within the echo window
    await _settled(state)
    assert writer.kinds().count("marks") == 2, "the failed patch does not count as sent"
    assert again == 5.0, "an ended refresh whose node still shows its marks is looked at again"
    state.caches = caches(datetime.now(UTC))  # the watch shows the node unmarked (and not yet recorded)
    assert await reconcile_refresh(state, "hr-a") == 5.0
    patch = writer.calls[-1][2]
    state.caches = caches(datetime.now(UTC), labels=patch.labels, annotations=patch.annotations)
    assert await reconcile_refresh(state, "hr-a") is None


async def test_a_child_whose_create_failed_does_not_hold_a_slot() -> None:
    writer = FakeWriter(fail_create=frozenset({"node-a"}))
    state = operator_state(writer, plan_interval=1.0)
    state.caches = caches(datetime.now(UTC), ("node-a", "node-b"))
    state.latest_plan["fleet"] = plan_body(canary=0, maxUnavailable=1)
    with pytest.raises(ApiFailureError):
        await reconcile_plan(state, "fleet")
    assert state.plan_ahead["fleet"] == {}, "nothing counted as created"
    writer.fail_create = frozenset()
    await reconcile_plan(state, "fleet")
    await _settled(state)
    created = [c[2] for c in writer.calls if c[0] == "create"]
    assert created == ["node-a", "node-a"], "the same node is chosen again"


@pytest.mark.parametrize(
    "status",
    [
        pytest.param({}, id="never-visited"),
        pytest.param(
            {
                "phase": "Pending",
                "directive": "Wait",
                "conditions": [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "StartPaced",
                        "message": "ready; starts at ...",
                        "lastTransitionTime": "2026-11-24T12:00:00Z",
                        "observedGeneration": 1,
                    }
                ],
            },
            id="waiting-for-its-start-slot",
        ),
        pytest.param(None, id="ended"),
    ],
)
async def test_a_deleted_refresh_that_is_not_under_way_is_released_by_its_pass(status: dict[str, Any] | None) -> None:
    writer = FakeWriter(in_flight=50)  # the API server is behind: a start would be held, a release is not
    state = operator_state(writer)
    state.caches = caches(datetime.now(UTC))
    body = refresh_body(status=_ended() if status is None else status)
    body["metadata"]["deletionTimestamp"] = datetime.now(UTC).isoformat()
    state.latest_refresh["hr-a"] = body
    waiting = asyncio.create_task(state.wait_released("hr-a", timeout=5.0))
    await asyncio.sleep(0)
    await reconcile_refresh(state, "hr-a")
    assert await asyncio.wait_for(waiting, 1.0), "the delete handler is woken by the pass"
    assert state.pacer.slot("hr-a") is None, "no start slot taken by an object being deleted"


async def test_a_refresh_under_way_is_not_released_when_deleted() -> None:
    state = operator_state(FakeWriter())
    state.caches = caches(datetime.now(UTC), marked_by="hr-a")
    body = refresh_body(status=_under_way("Migrating"))
    body["metadata"]["deletionTimestamp"] = datetime.now(UTC).isoformat()
    state.latest_refresh["hr-a"] = body
    await reconcile_refresh(state, "hr-a")
    assert not await state.wait_released("hr-a", timeout=0.05)
    assert "hr-a" not in state.release_waiters, "a waiter that timed out leaves nothing behind"


async def test_a_refresh_deleted_while_its_pass_writes_leaves_nothing_behind() -> None:
    writer = FakeWriter()
    state = operator_state(writer)
    state.caches = caches(datetime.now(UTC))
    state.latest_refresh["hr-a"] = refresh_body()
    writer.during_status = lambda: state.forget_refresh("hr-a", None)  # its DELETED event meanwhile
    assert await reconcile_refresh(state, "hr-a") is None
    await _settled(state)
    assert "hr-a" not in state.released
    assert state.pacer.slot("hr-a") is None
    assert len(state.refreshes) == 0


async def test_forgetting_a_refresh_drops_everything_kept_about_it() -> None:
    writer = FakeWriter()
    state = operator_state(writer, max_starts_per_second=1.0)
    now = datetime.now(UTC)
    state.caches = caches(now, ("node-a", "node-b"))
    state.latest_refresh["hr-a"] = refresh_body("hr-a", "node-a")
    state.latest_refresh["hr-b"] = refresh_body("hr-b", "node-b")
    await reconcile_refresh(state, "hr-a")
    await reconcile_refresh(state, "hr-b")  # waits for its slot: holds one
    await _settled(state)
    assert state.pacer.slot("hr-b") is not None
    state.refreshes.add("hr-b")
    state.unvisited["hr-b"] = 1.0
    state.plan_ahead.setdefault("fleet", {})["hr-b"] = OwnedRefresh("hr-b", "node-b", "2.0", None)
    state.node_marks_sent.due("hr-b", "mark")
    state.forget_refresh("hr-b", "fleet")
    assert "hr-b" not in state.latest_refresh
    assert "hr-b" not in state.released and "hr-b" not in state.unvisited
    assert state.pacer.slot("hr-b") is None
    assert state.plan_ahead["fleet"] == {}
    assert state.node_marks_sent.due("hr-b", "mark"), "its echo window is gone too"
    assert len(state.refreshes) == 0


async def test_a_plan_retries_a_failed_node_under_a_new_name_that_names_the_failed_one() -> None:
    writer = FakeWriter()
    state = operator_state(writer, plan_interval=1.0)
    now = datetime.now(UTC)
    failed = OwnedRefresh(
        refresh_name("fleet", "node-a", TARGET["version"]), "node-a", TARGET["version"], Phase.FAILED, retried=True
    )
    state.caches = caches(now, ("node-a",), children={"fleet": [failed]})
    state.latest_plan["fleet"] = plan_body(canary=0, maxUnavailable=1)
    await reconcile_plan(state, "fleet")
    await _settled(state)
    created = [c[1] for c in writer.calls if c[0] == "create"]
    assert created == [refresh_name("fleet", "node-a", TARGET["version"], 1)]
    assert writer.retries_of == {created[0]: failed.name}


async def test_a_claim_written_before_a_crash_goes_with_the_refresh_its_status_never_recorded() -> None:
    """The grant claims the node first, then writes the status that records it; the operator crashed in
    between and the refresh was deleted. The claim names it: it is taken off before the refresh goes."""
    writer = FakeWriter()
    state = operator_state(writer)
    state.caches = caches(datetime.now(UTC), marked_by="hr-a")
    body = refresh_body(status={"phase": "Pending", "directive": "Wait"})
    body["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    state.latest_refresh["hr-a"] = body
    await reconcile_refresh(state, "hr-a")
    await _settled(state)
    patches = [c[2] for c in writer.calls if c[0] == "marks"]
    assert patches and patches[-1].annotations.get(CLAIM_ANNOTATION, "kept") is None, writer.calls
    assert state.released.get("hr-a") is True
    # Someone else's claim is left alone.
    other = FakeWriter()
    state = operator_state(other)
    state.caches = caches(datetime.now(UTC), marked_by="hr-other")
    state.latest_refresh["hr-a"] = body
    await reconcile_refresh(state, "hr-a")
    assert not [c for c in other.calls if c[0] == "marks"], other.calls


async def test_a_success_writes_the_record_once_and_never_over_a_later_refresh() -> None:
    body = refresh_body(status={**started("Succeeded"), "directive": "Proceed", "completedAt": "2026-11-24T12:00:00Z"})
    writer = FakeWriter()
    state = operator_state(writer, follow_interval=5.0)
    state.caches = caches(datetime.now(UTC))
    state.latest_refresh["hr-a"] = body
    assert await reconcile_refresh(state, "hr-a") == 5.0
    patch = writer.calls[-1][2]
    assert patch.labels == {HOST_VERSION_KEY: "2.0"}
    assert patch.annotations[HOST_REFRESHED_BY_ANNOTATION] == "hr-a"
    state.latest_refresh["hr-a"] = refresh_body(status=writer.calls[0][2])  # the status write's echo
    state.caches = caches(datetime.now(UTC), labels=patch.labels, annotations=patch.annotations)
    state.node_marks_sent.forget("hr-a")
    assert await reconcile_refresh(state, "hr-a") is None
    assert writer.kinds() == ["refresh_status", "marks"], "recorded: nothing more to write"
    # The node records a refresh that succeeded later: an older one seen again leaves it alone.
    later = {
        **patch.annotations,
        HOST_REFRESHED_BY_ANNOTATION: "hr-b",
        HOST_REFRESHED_AT_ANNOTATION: "2026-12-01T00:00:00Z",
    }
    other = FakeWriter()
    state = operator_state(other, follow_interval=5.0)
    state.caches = caches(datetime.now(UTC), labels={HOST_VERSION_KEY: "3.0"}, annotations=later)
    state.latest_refresh["hr-a"] = body
    assert await reconcile_refresh(state, "hr-a") is None
    assert other.kinds() == ["refresh_status"], other.calls
