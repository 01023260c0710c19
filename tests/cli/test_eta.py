"""A RefreshPlan's ETA (model.plan_eta): built on the plan's own measured per-node time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hostrefresh.cli.model import node_seconds, plan_eta

NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def _ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


def _plan(nodes: int, pending: int, max_unavailable: int | str = 1, soak: int = 0, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "generation": 1},
        "spec": {"maxUnavailable": max_unavailable, "soakSeconds": soak},
        "status": {
            "observedGeneration": 1,
            "nodes": nodes,
            "pending": pending,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "RollingOut"}],
            **status,
        },
    }


def _done(name: str, started_ago: float, took: float, phase: str = "Succeeded") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": name},
        "status": {"phase": phase, "startedAt": _ts(started_ago), "completedAt": _ts(started_ago - took)},
    }


def _running(name: str, started_ago: float | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Migrating"}
    if started_ago is not None:
        status["startedAt"] = _ts(started_ago)
    return {"metadata": {"name": name}, "spec": {"nodeName": name}, "status": status}


def test_unknown_until_a_node_completed() -> None:
    eta = plan_eta(_plan(4, 3), [_running("a", 50)], NOW)
    assert eta.seconds is None and eta.text() == "ETA unknown (no node completed yet)"
    # A failed node is no measure of a node's time.
    eta = plan_eta(_plan(4, 2), [_running("a", 50), _done("b", 500, 30, phase="Failed")], NOW)
    assert eta.seconds is None and eta.completed == 0


def test_the_per_node_time_is_the_median_of_the_succeeded_children() -> None:
    children = [_done("a", 1000, 60), _done("b", 900, 100), _done("c", 800, 400), _done("d", 700, 10, "RolledBack")]
    assert sorted(node_seconds(children)) == [60.0, 100.0, 400.0]
    eta = plan_eta(_plan(5, 2), children, NOW)
    assert eta.per_node_seconds == 100.0 and eta.completed == 3


def test_pending_nodes_go_in_waves_of_max_unavailable() -> None:
    children = [_done("a", 1000, 100)]
    # 7 pending, 3 at a time, nothing running: ceil(7 / 3) = 3 waves of 100 s.
    assert plan_eta(_plan(8, 7, max_unavailable=3), children, NOW).seconds == 300.0
    # A percentage is resolved against the plan's nodes (25% of 8 = 2): 4 waves.
    assert plan_eta(_plan(8, 7, max_unavailable="25%"), children, NOW).seconds == 400.0
    # One slot: one node after another.
    assert plan_eta(_plan(8, 7), children, NOW).seconds == 700.0


def test_running_nodes_need_what_is_left_of_the_per_node_time() -> None:
    children = [_done("a", 1000, 100), _running("b", 70), _running("c", 20)]
    # b frees its slot in 30 s, c in 80 s; the one pending node takes b's slot: 30 + 100.
    eta = plan_eta(_plan(4, 1, max_unavailable=2), children, NOW)
    assert eta.seconds == 130.0 and eta.remaining == 3 and eta.text() == "ETA 2m10s"
    # A node running longer than the per-node time is due now, not in the past.
    late = plan_eta(_plan(2, 0, max_unavailable=2), [_done("a", 1000, 100), _running("b", 500)], NOW)
    assert late.seconds == 0.0
    # A child created but not started yet needs the whole per-node time.
    assert plan_eta(_plan(2, 0), [_done("a", 1000, 100), _running("b", None)], NOW).seconds == 100.0


def test_each_slot_soaks_before_its_next_node() -> None:
    # The canary ended 10 s ago; soak 60 s: the next wave of 2 starts in 50 s, then one more after soak.
    children = [_done("a", 110, 100)]
    eta = plan_eta(_plan(4, 3, max_unavailable=2, soak=60), children, NOW)
    assert eta.seconds == pytest.approx(50 + 100 + 60 + 100)


def test_ended_paused_and_halted_plans() -> None:
    children = [_done("a", 1000, 100)]
    ready = _plan(1, 0, conditions=[{"type": "Ready", "status": "True", "reason": "RolloutComplete"}])
    assert plan_eta(ready, children, NOW).seconds == 0.0
    assert plan_eta(ready, children, NOW).text() == "ETA 0s"
    paused = _plan(3, 2)
    paused["spec"]["paused"] = True
    assert plan_eta(paused, children, NOW).text() == "ETA unknown (paused)"
    halted = _plan(
        3, 1, paused=True, conditions=[{"type": "Paused", "status": "True", "reason": "FailureThresholdReached"}]
    )
    assert plan_eta(halted, children, NOW).text() == "ETA unknown (halted)"  # nothing more starts by itself


def test_the_eta_as_data() -> None:
    data = plan_eta(_plan(3, 2), [_done("a", 1000, 100)], NOW).to_json()
    assert data == {"seconds": 200.0, "perNodeSeconds": 100.0, "completed": 1, "remaining": 2, "slots": 1, "why": None}
