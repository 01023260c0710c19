"""The agent's liveness on the operator's clock: clock skew, forged stamps, an operator just started."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hostrefresh.api import Phase
from hostrefresh.operator import conditions as cond
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.lifecycle import decide
from hostrefresh.operator.views import AgentView

from .helpers import T0, host_refresh, inputs, started


@pytest.mark.parametrize("skew", [-30, 0, 30])
def test_an_agent_with_a_skewed_clock_is_alive_while_its_renewals_arrive(skew: int) -> None:
    view = AgentView(renewed_at=T0 + timedelta(seconds=skew), lease_seconds=10, seen_at=T0)
    assert view.alive(T0 + timedelta(seconds=9))
    assert not view.alive(T0 + timedelta(seconds=11))  # no renewal seen for longer than the lease


def test_a_renewal_long_past_is_not_life_even_when_just_seen() -> None:
    # an operator that has just started lists every Lease at once
    view = AgentView(renewed_at=T0 - timedelta(hours=2), lease_seconds=30, seen_at=T0)
    assert not view.alive(T0)


def _with_agent(agent_seen_ago: float, report_stamp: timedelta) -> object:
    now = T0 + timedelta(seconds=600)
    status = started("Migrating", "Migrating", updatedAt=(now + report_stamp).isoformat())
    base = inputs(host_refresh(status=status), now=now)
    agent = AgentView(renewed_at=now, lease_seconds=30, seen_at=now - timedelta(seconds=agent_seen_ago))
    return decide(type(base)(**{**base.__dict__, "agent": agent}))


def test_a_report_stamped_in_the_future_does_not_hide_a_silent_agent() -> None:
    d = _with_agent(agent_seen_ago=120, report_stamp=timedelta(hours=1))
    assert d.status.phase == Phase.ROLLING_BACK  # type: ignore[attr-defined]
    degraded = cond.get(d.status.conditions, cond.DEGRADED)  # type: ignore[attr-defined]
    assert degraded is not None and degraded.reason == Reason.AGENT_SILENT


def test_a_recent_report_is_a_sign_of_life() -> None:
    d = _with_agent(agent_seen_ago=120, report_stamp=-timedelta(seconds=5))
    assert d.status.phase == Phase.MIGRATING  # type: ignore[attr-defined]
