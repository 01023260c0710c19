"""Builders of snapshots for the operator's pure-function tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hostrefresh.api import HostRefresh
from hostrefresh.operator.views import AgentView, NodeView, PeerView, RefreshInputs, VMIView

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NODE_A = NodeView("node-a")


def host_refresh(status: dict[str, Any] | None = None, **spec: Any) -> HostRefresh:
    body: dict[str, Any] = {
        "metadata": {"name": "hr-a"},
        "spec": {
            "nodeName": "node-a",
            "target": {
                "version": "2.0",
                "kernel": "/k",
                "checksum": "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c",
            },
            **spec,
        },
    }
    if status:
        body["status"] = status
    return HostRefresh.model_validate(body)


def inputs(
    hr: HostRefresh,
    *,
    now: datetime = T0,
    node: NodeView | None = NODE_A,
    agent_age: float | None = 1.0,
    peers: tuple[PeerView, ...] = (),
    plan_paused: bool | None = None,
    vmis: VMIView | None = None,
    deleting: bool = False,
    generation: int = 1,
    start_at: datetime | None = None,
) -> RefreshInputs:
    renewed = None if agent_age is None else now - timedelta(seconds=agent_age)
    return RefreshInputs(
        hr=hr,
        name="hr-a",
        generation=generation,
        created_at=T0 - timedelta(minutes=1),
        deleting=deleting,
        node=node,
        agent=AgentView(renewed_at=renewed, lease_seconds=30),
        peers=peers,
        plan_paused=plan_paused,
        vmis=vmis,
        now=now,
        start_at=start_at,
    )


def started(phase: str, step: str | None = None, step_state: str = "Running", **extra: Any) -> dict[str, Any]:
    """Operator status of a refresh granted at T0 and now in ``phase``; agent at ``step``."""
    status: dict[str, Any] = {
        "phase": phase,
        "directive": extra.pop("directive", "Proceed"),
        "startedAt": T0.isoformat(),
        "phaseTimestamps": {phase: T0.isoformat(), "Preflight": T0.isoformat()},
        "addedTaints": ["hostrefresh.io/refreshing"],
        "addedAnnotations": ["hostrefresh.io/refreshing"],
    }
    if step is not None:
        status["agent"] = {"step": step, "stepState": step_state, "message": extra.pop("message", ""), **extra}
    return status
