"""The agent's liveness on the operator's clock: clock skew, forged stamps, an operator just started."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hostrefresh.api import Phase
from hostrefresh.kube.link import ApiLink
from hostrefresh.operator import conditions as cond
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.kube import WritesInFlight
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


def _silent_through_outage(link_trusted_since: timedelta | None) -> object:
    """The agent last heard 120 s ago (limit 60 s in the helpers' spec); the operator's own link to the
    API server came back ``link_trusted_since`` before now (None: it never went down)."""
    now = T0 + timedelta(seconds=600)
    status = started("Migrating", "Migrating", updatedAt=(now - timedelta(seconds=120)).isoformat())
    base = inputs(host_refresh(status=status), now=now)
    agent = AgentView(renewed_at=now - timedelta(seconds=120), lease_seconds=30, seen_at=now - timedelta(seconds=120))
    trusted = now - link_trusted_since if link_trusted_since is not None else None
    return decide(type(base)(**{**base.__dict__, "agent": agent, "link_trusted_since": trusted}))


def test_silence_while_the_operator_could_not_reach_the_api_server_is_not_the_agents() -> None:
    # The link came back 5 s ago: the agent's renewals since then have yet to arrive; no verdict.
    d = _silent_through_outage(timedelta(seconds=5))
    assert d.status.phase == Phase.MIGRATING  # type: ignore[attr-defined]
    # The link is down right now (trusted since now): no verdict either.
    d = _silent_through_outage(timedelta(0))
    assert d.status.phase == Phase.MIGRATING  # type: ignore[attr-defined]


def test_silence_after_the_link_came_back_is_the_agents() -> None:
    # Back for longer than the silence limit, and nothing heard since: the agent is silent.
    d = _silent_through_outage(timedelta(seconds=100))
    assert d.status.phase == Phase.ROLLING_BACK  # type: ignore[attr-defined]
    d = _silent_through_outage(None)
    assert d.status.phase == Phase.ROLLING_BACK  # type: ignore[attr-defined]


def test_the_operators_writes_tell_its_link_when_the_api_server_is_away() -> None:
    link = ApiLink()
    writes = WritesInFlight(link)
    with pytest.raises(ConnectionRefusedError), writes:
        raise ConnectionRefusedError("kube-apiserver restarting")
    assert link.down_since is not None and link.back_at is None
    with writes:  # the next write is answered
        pass
    assert link.down_since is None and link.back_at is not None and writes.count == 0


def test_a_relisted_lease_keeps_the_time_its_renewal_was_first_seen() -> None:
    renewed = T0 - timedelta(seconds=5)
    first = AgentView(renewed_at=renewed, lease_seconds=30).seen(None, T0)
    assert first.seen_at == T0
    # The watch relists 10 minutes later: the same renewal, seen again, is not heard again.
    relisted = AgentView(renewed_at=renewed, lease_seconds=30).seen(first, T0 + timedelta(minutes=10))
    assert relisted.seen_at == T0
    assert not relisted.alive(T0 + timedelta(minutes=10))
    # A real renewal is.
    later = T0 + timedelta(minutes=10)
    renewal = AgentView(renewed_at=later, lease_seconds=30).seen(relisted, later)
    assert renewal.seen_at == later and renewal.alive(later)


def test_a_lease_seen_only_now_but_renewed_long_ago_is_silence() -> None:
    # An operator just started (or a relist with no earlier record) sees a Lease renewed 10 minutes
    # ago by the agent's stamp: the agent is silent, however recently the operator saw the Lease.
    now = T0 + timedelta(seconds=600)
    status = started("Migrating", "Migrating", updatedAt=(now - timedelta(minutes=10)).isoformat())
    base = inputs(host_refresh(status=status), now=now)
    agent = AgentView(renewed_at=now - timedelta(minutes=10), lease_seconds=30, seen_at=now)
    d = decide(type(base)(**{**base.__dict__, "agent": agent}))
    assert d.status.phase == Phase.ROLLING_BACK
    degraded = cond.get(d.status.conditions, cond.DEGRADED)
    assert degraded is not None and degraded.reason == Reason.AGENT_SILENT
