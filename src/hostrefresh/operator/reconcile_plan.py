"""One pass over one RefreshPlan: snapshot -> plan (once) -> create the children due now, write status.

Called by the RefreshPlan work queue's workers only. Returns when the next pass is due. Tricks, each
with the invariant it relies on:

- **Start budget**: the plan creates only as many children as start pacing and the API server's
  backlog allow now (``waves.plan`` counts the rest as pending) and comes back when the next start
  is due. A child is created only when it may start, so its first pass grants it without a wait and
  a held start costs no write. Relies on ``waves.plan`` choosing the same nodes again from the
  same facts (it is level-based and orders nodes deterministically).
- **Children ahead of the watch** (``state.plan_ahead``): a child just created counts as active at
  once. Relies on child names being deterministic (``waves.refresh_name``): a create that races a
  duplicate fails with 409 instead of starting a node twice.
- **Counter-only writes at most once per interval** (``waves.counts_only``): during a wave every
  child moves the counters; a write per move would keep the plan churning. Relies on every change
  other than counters and message wording being written at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hostrefresh.api import RefreshPlan, RefreshPlanStatus
from hostrefresh.operator import conditions as cond
from hostrefresh.operator import metrics
from hostrefresh.operator.reconcile_refresh import post_event
from hostrefresh.operator.snapshot import BACKLOG_RETRY_SECONDS, plan_inputs
from hostrefresh.operator.state import OperatorState
from hostrefresh.operator.waves import OwnedRefresh, counts_only, plan, refresh_name


def start_budget(state: OperatorState, now: datetime) -> int | None:
    """How many children may start now (None: no limit): none while the API server is behind."""
    if state.backlog() > state.config.start_backlog:
        return 0
    return state.pacer.available(now)


def budget_due_in(state: OperatorState, now: datetime) -> float:
    """When a start held back for the budget may be tried again."""
    if state.backlog() > state.config.start_backlog:
        return BACKLOG_RETRY_SECONDS
    return state.pacer.next_token_in(now) + 0.001


async def reconcile_plan(state: OperatorState, name: str) -> float | None:
    """One pass over RefreshPlan ``name``; returns the seconds to its next pass."""
    body = state.latest_plan.get(name)
    if body is None or state.caches is None:
        return None
    started = time.perf_counter()
    config = state.config
    now = datetime.now(UTC)
    inputs, ahead = plan_inputs(name, body, state.caches, state.plan_ahead.get(name, {}), now, state.latest_plan)
    state.plan_ahead[name] = ahead
    gate = inputs.spec.health_gates.prometheus
    reading = await state.gates.read(gate) if gate is not None else None
    decision = plan(replace(inputs, start_budget=start_budget(state, now), gate=reading))
    state.plan_paused[name] = decision.status.paused
    template = inputs.spec.template.to_json()
    version = inputs.spec.target.version
    attempts = {node: decision.retries.get(node, (0, ""))[0] for node in decision.start}
    children = [(node, refresh_name(name, node, version, attempts[node])) for node in decision.start]
    for _, child in children:  # all before the first await: no one else takes the budget's tokens
        state.pacer.reserve(child, now)  # the child finds its slot at its first pass: no second wait
    for node, child in children:
        spec = {**template, "nodeName": node, "target": inputs.spec.target.to_json()}
        retry_of = decision.retries[node][1] if node in decision.retries else None
        created = await state.writer.create_refresh(child, body, node, spec, retry_of=retry_of)
        # Counted ahead of the watch once it exists (created now, or by an earlier pass: 409); a failed
        # create raises, so the node is chosen again instead of holding a slot for nothing.
        ahead[child] = OwnedRefresh(child, node, version, None)
        post_event(state, body, "Normal", "NodeRefreshStarted", f"created {child} for {node}")
        if created is not None:
            # Its first pass now, from the object as created: the grant need not wait for the watch.
            state.latest_refresh.setdefault(child, created)
            state.refreshes.add(child)
    due_in = config.plan_interval
    if decision.deferred:
        due_in = min(due_in, budget_due_in(state, now))
    if name not in state.latest_plan:  # deleted while this pass awaited
        state.forget_plan(name)
        return None
    new_status = decision.status.to_json()
    if new_status != inputs.status.to_json():
        since = time.monotonic() - state.plan_written.get(name, -math.inf)
        if counts_only(inputs.status, decision.status) and since < config.plan_interval:
            due_in = min(due_in, config.plan_interval - since)  # counters only: the next pass writes
        elif await state.writer.patch_plan_status(
            name, body["metadata"]["resourceVersion"], _with_removals(body, new_status)
        ):
            state.plan_written[name] = time.monotonic()
    for type_, reason, message in decision.events:
        post_event(state, body, type_, reason, message)
    _export(name, decision.status)
    metrics.RECONCILE_SECONDS.labels(RefreshPlan.KIND).observe(time.perf_counter() - started)
    return due_in


def _with_removals(body: Mapping[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The status as a merge patch: fields the stored status has and ``status`` leaves out (a cleared
    pausedReason, a wave no longer awaiting approval) are sent as null, which removes them."""
    stored = body.get("status") or {}
    return {**{key: None for key in stored if key not in status and key != "kopf"}, **status}


def _export(name: str, st: RefreshPlanStatus) -> None:
    """The plan's figures as Prometheus metrics."""
    metrics.set_plan(
        name,
        {"pending": st.pending, "active": st.active, "succeeded": st.succeeded, "failed": st.failed},
        st.waves_started,
        st.paused,
        halted=any(
            c.type == cond.PAUSED and c.status == cond.TRUE and c.reason == cond.Reason.FAILURE_THRESHOLD
            for c in st.conditions
        ),
        awaiting=st.awaiting_approval,
    )
