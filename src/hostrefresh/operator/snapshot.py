"""Build the decision functions' inputs from an object and the operator's caches (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from hostrefresh.api import Directive, HostRefresh, HostRefreshStatus, RefreshPlanSpec, RefreshPlanStatus
from hostrefresh.api.names import APPROVED_WAVE_ANNOTATION, FINALIZER, PLAN_LABEL
from hostrefresh.operator import conditions as cond
from hostrefresh.operator import objects
from hostrefresh.operator.conditions import Reason
from hostrefresh.operator.state import Caches
from hostrefresh.operator.views import AgentView, NodeView, RefreshInputs, VMIView
from hostrefresh.operator.waves import OwnedRefresh, PlanInputs, merge_ahead, overlapping_claims

#: How soon a start held back by the API server's backlog is tried again.
BACKLOG_RETRY_SECONDS = 0.1


def plan_of(meta: Mapping[str, Any]) -> str | None:
    """The RefreshPlan that created a HostRefresh (its label), None for a standalone one."""
    plan_name: str | None = (meta.get("labels") or {}).get(PLAN_LABEL)
    return plan_name


def guarded(body: Mapping[str, Any]) -> bool:
    """Whether deletion of this object waits for the operator (its finalizer is on, or it is going).

    No refresh is granted before that: deleting a granted refresh without the finalizer would leave
    its node half-way with nobody to roll it back. Waiting also keeps the first status write from
    racing kopf's finalizer patch (one of the two would fail and go again).
    """
    meta = body["metadata"]
    return bool(meta.get("deletionTimestamp")) or FINALIZER in (meta.get("finalizers") or [])


def _first(index: Mapping[str, Collection[Any]], key: str) -> Any:
    return next(iter(index[key]), None) if key in index else None


def vmis_on(index: Mapping[str, Collection[tuple[str, bool]]], node: str) -> VMIView | None:
    """KubeVirt's VMIs on ``node`` (None: KubeVirt's index knows nothing of it)."""
    if node not in index:
        return None
    values = sorted(index[node])
    return VMIView(total=len(values), unmovable=tuple(name for name, unmovable in values if unmovable))


def refresh_inputs(
    name: str,
    body: Mapping[str, Any],
    caches: Caches,
    plan_paused: bool | None,
    now: datetime,
    link_trusted_since: datetime | None = None,
) -> RefreshInputs:
    """One HostRefresh as ``lifecycle.decide`` sees it (its start time is the caller's: see ``start_at``)."""
    meta = body["metadata"]
    hr = HostRefresh.model_validate({"spec": body.get("spec", {}), "status": body.get("status") or {}})
    node_name = hr.spec.node_name
    node: NodeView | None = _first(caches.nodes, node_name)
    agent: AgentView = _first(caches.agents, node_name) or AgentView()
    return RefreshInputs(
        hr=hr,
        name=name,
        generation=int(meta.get("generation") or 0),
        created_at=objects.parse_time(meta.get("creationTimestamp")) or now,
        deleting=bool(meta.get("deletionTimestamp")),
        node=node,
        agent=agent,
        peers=tuple(p for p in caches.refreshes_by_node.get(node_name, ()) if p.name != name),
        plan_paused=plan_paused,
        vmis=vmis_on(caches.vmis_by_node, node_name),
        now=now,
        link_trusted_since=link_trusted_since,
    )


def start_at(slot: datetime, backlogged: bool, now: datetime) -> datetime:
    """When a refresh ready to start may start: its pacing slot, and not while the API server is behind.

    A start puts its first writes, and its agent's, in the API server's queue: while that queue is
    long (a burst of new objects, or of our writes), every running refresh's reports would wait
    behind them, so the start waits a moment instead.
    """
    if backlogged and slot <= now:
        return now + timedelta(seconds=BACKLOG_RETRY_SECONDS)
    return slot


def grants_start(before: HostRefreshStatus, after: HostRefreshStatus) -> bool:
    """Whether a decision lets a refresh that had not started begin."""
    return before.directive in (None, Directive.WAIT) and after.directive == Directive.PROCEED


def waits_for_start(status: HostRefreshStatus) -> bool:
    """Whether the decision holds a refresh that is otherwise ready, for its start time."""
    progressing = cond.get(status.conditions, cond.PROGRESSING)
    return progressing is not None and progressing.reason == Reason.START_PACED


def under_way(body: Mapping[str, Any]) -> bool:
    """Granted and not yet ended (the agent works on it)."""
    return (body.get("status") or {}).get("directive") in (Directive.PROCEED, Directive.ROLL_BACK)


def plan_inputs(
    name: str,
    body: Mapping[str, Any],
    caches: Caches,
    ahead: Mapping[str, OwnedRefresh],
    now: datetime,
    plans: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[PlanInputs, dict[str, OwnedRefresh]]:
    """One RefreshPlan as ``waves.plan`` sees it, and what of our own writes the watch still lacks."""
    meta = body["metadata"]
    spec = RefreshPlanSpec.model_validate(body.get("spec", {}))
    status = RefreshPlanStatus.model_validate(body.get("status") or {})
    selected = [view for key in caches.nodes for view in caches.nodes[key] if spec.selects(view.labels)]
    children = {o.name: o for o in caches.children_by_plan.get(name, ())}
    owned, still_ahead = merge_ahead(children, dict(ahead))
    agents = {key: _first(caches.agents, key) or AgentView() for key in caches.agents}
    others = [
        (other, str(b["metadata"].get("creationTimestamp") or ""), str(s.target.version), s)
        for other, b in (plans or {}).items()
        if other != name and not b["metadata"].get("deletionTimestamp") and (s := _plan_spec(b)) is not None
    ]
    claimed = overlapping_claims(name, str(meta.get("creationTimestamp") or ""), spec.target.version, selected, others)
    busy = frozenset(
        view.name
        for view in selected
        for peer in caches.refreshes_by_node.get(view.name, ())
        if peer.started and not peer.terminal and peer.name not in children and peer.name not in ahead
    )
    inputs = PlanInputs(
        name=name,
        generation=int(meta.get("generation") or 0),
        spec=spec,
        status=status,
        nodes=tuple(selected),
        agents=agents,
        owned=owned,
        now=now,
        claimed=claimed,
        busy_elsewhere=busy,
        approved_wave=(meta.get("annotations") or {}).get(APPROVED_WAVE_ANNOTATION),
    )
    return inputs, still_ahead


def _plan_spec(body: Mapping[str, Any]) -> RefreshPlanSpec | None:
    """Another plan's spec, or None if it does not validate (that plan's own pass says why)."""
    try:
        return RefreshPlanSpec.model_validate(body.get("spec", {}))
    except ValueError:
        return None
