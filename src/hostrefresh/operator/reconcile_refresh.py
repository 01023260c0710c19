"""One pass over one HostRefresh: snapshot -> decide (once) -> write node claim, marks, status, Events,
and at a success the node's record of what it runs.

Called by the HostRefresh work queue's workers only (see handlers.py for what adds to the queue).
Returns when the next pass is due. Write-saving tricks, each with the invariant it relies on:

- **Mark echo window** (``state.node_marks_sent``): node marks are not patched again within a few
  seconds of our own patch, before the watch shows it. Relies on marks carrying the refresh's name
  and being computed from the node as seen, so a late or repeated patch is harmless.
- **Plan woken by our write** (``state.plan_ahead``): a child's phase that frees a slot reaches its
  plan from our write, not its echo. Relies on ``waves.merge_ahead`` keeping such an entry only until
  the watch shows that phase (or a terminal one), so the plan never counts a child twice.
- (Removed, measured: skipping a pass over a version our own status write had replaced. With the
  work queue coalescing events it saved 0.07 API requests per refresh of 19.6, within noise; a stale
  version now makes a write that fails with 409, and the write's echo brings the newer one.)
- **Start pacing and the backlog hold** (``snapshot.start_at``): inputs of the one decision, not a
  second decision. Relies on ``lifecycle.decide`` being level-based: a held start is granted by a
  later pass from the same facts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hostrefresh.api import HostRefresh, HostRefreshStatus, Phase, RefreshScope, is_terminal
from hostrefresh.api.names import CLAIM_ANNOTATION
from hostrefresh.api.phases import TERMINAL
from hostrefresh.operator import metrics, objects
from hostrefresh.operator.lifecycle import Decision, decide, phase_deadline
from hostrefresh.operator.nodemarks import NodeMarkPatch, mark, record, taints_node, unmark
from hostrefresh.operator.snapshot import (
    BACKLOG_RETRY_SECONDS,
    grants_start,
    guarded,
    plan_of,
    refresh_inputs,
    start_at,
    under_way,
    waits_for_start,
)
from hostrefresh.operator.state import OperatorState
from hostrefresh.operator.views import NodeView

log = logging.getLogger("hostrefresh.operator")

#: A start found the node claimed by another refresh: look again after this long.
CLAIM_RETRY_SECONDS = 2.0
#: Child phases that change what its plan may do: a slot frees, or the health gate counts a failure.
PLAN_WAKING_PHASES = TERMINAL | {Phase.ROLLING_BACK}


def next_pass(
    state: OperatorState, body: Mapping[str, Any], now: datetime, name: str, deadline: datetime | None = None
) -> float | None:
    """Seconds to the next pass: deadlines and the agent's signs of life need no event, so a refresh
    under way is looked at every ``follow_interval``, one waiting to start every ``refresh_interval``
    (node and Lease changes do not wake it), sooner when its start slot or its phase's ``deadline``
    comes due (just after it: a phase of 1 s must not run 5 s unjudged); an ended one (not being
    deleted) only on events."""
    status = body.get("status") or {}
    if is_terminal(status.get("phase")) and not body["metadata"].get("deletionTimestamp"):
        return None
    periodic = state.config.follow_interval if under_way(body) else state.config.refresh_interval
    due = [periodic]
    slot = state.pacer.slot(name)
    for when in (slot, deadline):
        ahead = (when - now).total_seconds() if when is not None else 0.0
        if ahead > 0:
            due.append(ahead + 0.001)
    return min(due)


async def reconcile_refresh(state: OperatorState, name: str) -> float | None:
    """One pass over HostRefresh ``name`` (its newest version as the watch or our create gave it)."""
    body = state.latest_refresh.get(name)
    if body is None or state.caches is None:
        return None
    if not guarded(body):
        return None  # kopf adds its finalizer first; that write's event adds us again
    started = time.perf_counter()
    now = datetime.now(UTC)
    meta = body["metadata"]
    plan_name = plan_of(meta)
    paused = state.plan_paused.get(plan_name) if plan_name else None
    inputs = refresh_inputs(name, body, state.caches, paused, now, state.link.trusted_since(now))
    hr = inputs.hr
    backlogged = plan_name is None and state.backlog() > state.config.start_backlog
    slot = state.pacer.peek(name, now)
    start = start_at(slot, backlogged, now)
    decision = decide(replace(inputs, start_at=start))
    if not inputs.deleting and (grants_start(hr.status, decision.status) or waits_for_start(decision.status)):
        state.pacer.reserve(name, now)  # its place in line, whether it starts now or waits
        if start > slot:
            state.pacer.delay(name, start)
            if hr.status.phase is not None:
                return BACKLOG_RETRY_SECONDS  # held only for the backlog: nothing to write (but a first visit)
    if grants_start(hr.status, decision.status) or is_terminal(decision.status.phase):
        state.pacer.forget(name)
    if grants_start(hr.status, decision.status):
        holder = await state.writer.claim_node(hr.spec.node_name, name, inputs.node)
        if holder != name:
            # Another refresh holds the node (our view of it was behind): no grant, nothing written;
            # the next pass sees it in the index and says so (NodeBusy).
            log.info("HostRefresh %s: node %s is claimed by %s; the start waits", name, hr.spec.node_name, holder)
            return CLAIM_RETRY_SECONDS
        if CLAIM_ANNOTATION not in decision.status.added_annotations:
            decision.status.added_annotations = [*decision.status.added_annotations, CLAIM_ANNOTATION]
    planned = _plan_marks(state, decision, inputs.node, hr, name)
    if not await _write_status(state, body, hr, decision, plan_name):
        return None  # someone moved the object on; its next event brings it back
    await _write_marks(state, decision, inputs.node, hr, name, planned)
    if name not in state.latest_refresh:  # deleted while this pass awaited: keep nothing of it
        state.forget_refresh(name, plan_name)
        return None
    state.set_released(name, decision.release)
    report = hr.status.agent
    nested_since = report.nested_since if report is not None and not is_terminal(decision.status.phase) else None
    metrics.NESTED_NOW.set(hr.spec.node_name, nested_since)
    metrics.RECONCILE_SECONDS.labels(HostRefresh.KIND).observe(time.perf_counter() - started)
    deadline = phase_deadline(decision.status, hr.spec.timeouts)
    status_json = objects.operator_status_json(decision.status)
    again = next_pass(state, {"metadata": meta, "status": status_json}, now, name, deadline)
    if again is None and _marks_left(inputs.node, name, decision):
        # Ended, but the node (as last seen) still carries our marks, or lacks the record of what it runs
        # now: look again until it does not.
        again = state.config.follow_interval
    return again


def _end_patch(node: NodeView | None, name: str, decision: Decision) -> NodeMarkPatch:
    """What an ended refresh still has to write to its node: its marks off, its record of what the node
    runs on (each only as far as the node, as given, lacks it)."""
    status = decision.status
    patch = (
        unmark(node, name, status.added_taints, status.added_annotations) if decision.unmark_node else NodeMarkPatch()
    )
    return patch if decision.record_node is None else patch.merged(record(node, decision.record_node))


def _marks_left(node: NodeView | None, name: str, decision: Decision) -> bool:
    return node is not None and not _end_patch(node, name, decision).empty


def _plan_marks(
    state: OperatorState, decision: Decision, node: NodeView | None, hr: HostRefresh, name: str
) -> NodeMarkPatch | None:
    """Record the marks about to be added before adding them: a crash in between never leaves an
    unrecorded mark behind (marks carry our name, so a recorded-but-absent one is harmless)."""
    if not decision.mark_node or node is None:
        return None
    status = decision.status
    planned = mark(
        node,
        name,
        status.added_taints,
        status.added_annotations,
        state.config.marker_annotations,
        taint=taints_node(hr.spec.scope),
    )
    status.added_taints, status.added_annotations = planned.added_taints, planned.added_annotations
    return planned


async def _write_status(
    state: OperatorState, body: Mapping[str, Any], hr: HostRefresh, decision: Decision, plan_name: str | None
) -> bool:
    """Write the operator's status fields if they changed, then their Events; False on a conflict."""
    name = body["metadata"]["name"]
    version = body["metadata"]["resourceVersion"]
    status = decision.status
    new_status = objects.operator_status_json(status)
    if new_status == objects.operator_status_json(hr.status):
        return True
    if not await state.writer.patch_refresh_status(name, version, new_status):
        return False
    woke_plan = status.phase in PLAN_WAKING_PHASES and status.phase != hr.status.phase
    if woke_plan and plan_name is not None and plan_name in state.latest_plan:
        annotations = body["metadata"].get("annotations") or {}
        ahead = objects.owned_refresh(name, body.get("spec", {}), new_status, annotations)
        state.plan_ahead.setdefault(plan_name, {})[name] = ahead
        state.plans.add(plan_name)
    for event in decision.events:
        post_event(state, body, event.type, event.reason, event.message)
    node = objects.node_ref(hr.spec.node_name)
    for event in decision.node_events:
        post_event(state, node, event.type, event.reason, event.message)
    _observe_transition(hr, status)
    return True


async def _write_marks(
    state: OperatorState,
    decision: Decision,
    node: NodeView | None,
    hr: HostRefresh,
    name: str,
    planned: NodeMarkPatch | None,
) -> None:
    """Node marks only when the node (as the cache shows it) lacks them or still has them, and not
    again while our own patch has yet to come back through the watch (it would only conflict)."""
    if node is None:
        return
    status, config = decision.status, state.config
    taint = taints_node(hr.spec.scope)
    if planned is not None and not planned.empty:
        if state.node_marks_sent.due(name, "mark"):
            await _patch_marks(
                state,
                name,
                node,
                lambda view: mark(
                    view, name, status.added_taints, status.added_annotations, config.marker_annotations, taint=taint
                ),
            )
    elif decision.unmark_node or decision.record_node is not None:
        # At the end: the marks off and (after a success) the record of what the node runs on, in one patch.
        def ended(view: NodeView) -> NodeMarkPatch:
            return _end_patch(view, name, decision)

        if not ended(node).empty and state.node_marks_sent.due(name, "unmark"):
            await _patch_marks(state, name, node, ended)


async def _patch_marks(
    state: OperatorState, name: str, node: NodeView, compute: Callable[[NodeView], NodeMarkPatch]
) -> None:
    """Patch the node's marks; a patch that failed was not sent (the retry must not wait for its echo)."""
    try:
        await state.writer.patch_node_marks(node.name, compute, node)
    except BaseException:
        state.node_marks_sent.forget(name)
        raise


def post_event(state: OperatorState, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event about ``body`` beside the pass (built now, from this version of the object)."""
    config = state.config
    event = objects.event_body(
        body, type_, reason, message, config.events_namespace, config.identity, datetime.now(UTC)
    )
    state.in_background(state.writer.post_event(event))


def _observe_transition(hr: HostRefresh, status: HostRefreshStatus) -> None:
    previous, phase = hr.status.phase, status.phase
    if phase == previous:
        return
    if previous and previous in status.phase_timestamps and phase in status.phase_timestamps:
        spent = (status.phase_timestamps[phase] - status.phase_timestamps[previous]).total_seconds()
        metrics.PHASE_SECONDS.labels(str(previous), str(hr.spec.scope)).observe(max(spent, 0.0))
    if is_terminal(phase):
        metrics.REFRESHES.labels(str(phase), str(hr.spec.scope)).inc()
        if hr.spec.scope == RefreshScope.HOST:  # a VMM-only refresh never nests: the last host refresh's stays
            metrics.NESTED_NOW.ended(hr.spec.node_name, status.nested_seconds or 0.0)
