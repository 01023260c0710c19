"""Thin kopf handlers: build a snapshot from kopf's in-memory indexes, call a pure decision
function, write the result. No decision logic lives here.

Indexes (nodes, agent Leases, HostRefreshes by node and by plan, VMIs by node) are kept by kopf from
its watches, so a reconcile reads no API objects; it only writes what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Coroutine, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import kopf

from hostrefresh.api import Directive, HostRefresh, HostRefreshStatus, Phase, RefreshPlanSpec, RefreshPlanStatus
from hostrefresh.kube.resources import AGENT_COMPONENT_LABEL, FINALIZER, PLAN_LABEL
from hostrefresh.operator import kube, metrics
from hostrefresh.operator.bookkeeping import NoDiffBase
from hostrefresh.operator.config import OperatorConfig
from hostrefresh.operator.lifecycle import decide
from hostrefresh.operator.nodemarks import CLAIM_ANNOTATION, NodeMarkLog, mark, taints_node, unmark
from hostrefresh.operator.pacing import StartPacer
from hostrefresh.operator.views import AgentView, NodeView, PeerView, RefreshInputs, VMIView, is_terminal
from hostrefresh.operator.waves import OwnedRefresh, PlanInputs, counts_only, merge_ahead, plan, refresh_name

GROUP, VERSION = "hostrefresh.io", "v1alpha1"
log = logging.getLogger("hostrefresh.operator")
REGISTRY = kopf.OperatorRegistry()


def registry() -> kopf.OperatorRegistry:
    """The operator's handlers (a registry of its own, so embedding never mixes in others)."""
    return REGISTRY


# ---------------------------------------------------------------------------------------------
# Indexes: kopf keeps these up to date from its watches. They are coroutines although they never
# await: kopf runs plain functions in a thread pool, a hop per event that only adds latency here.


@kopf.index("nodes", registry=REGISTRY)
async def node_index(name: str, body: kopf.Body, **_: Any) -> dict[str, NodeView]:
    return {name: kube.node_view(body)}


@kopf.index("coordination.k8s.io", "v1", "leases", labels=AGENT_COMPONENT_LABEL, registry=REGISTRY)
async def lease_index(
    name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[str, AgentView]:
    config: OperatorConfig = memo.config
    meta = body.get("metadata", {})
    node = kube.heartbeat_node(
        name, namespace, meta.get("labels") or {}, config.namespace, meta.get("annotations") or {}
    )
    # Each renewal is a watch event: the time it arrives is the operator's own clock's view of it.
    return {node: kube.agent_view(body, seen_at=datetime.now(UTC))} if node is not None else {}


@kopf.index(GROUP, VERSION, "hostrefreshes", registry=REGISTRY)
async def refresh_index(
    name: str, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any
) -> dict[str, PeerView]:
    created = kube.parse_time(meta.get("creationTimestamp")) or datetime.now(UTC)
    directive = status.get("directive")
    return {
        str(spec.get("nodeName")): PeerView(
            name=name,
            created_at=created,
            started=directive in ("Proceed", "RollBack"),
            terminal=is_terminal(status.get("phase")),
        )
    }


@kopf.index(GROUP, VERSION, "hostrefreshes", labels={PLAN_LABEL: kopf.PRESENT}, registry=REGISTRY)
async def plan_children(
    name: str, spec: kopf.Spec, status: kopf.Status, labels: kopf.Labels, **_: Any
) -> dict[str, OwnedRefresh]:
    return {str(labels[PLAN_LABEL]): kube.owned_refresh(name, spec, status)}


@kopf.index("kubevirt.io", "v1", "virtualmachineinstances", registry=REGISTRY)
async def vmi_index(
    name: str, namespace: str | None, body: kopf.Body, status: kopf.Status, **_: Any
) -> dict[str, tuple[str, bool]]:
    """node -> (namespace/name, whether it cannot be handed over: host devices, GPUs, SR-IOV)."""
    node = status.get("nodeName")
    if not node:
        return {}
    devices = ((body.get("spec") or {}).get("domain") or {}).get("devices") or {}
    interfaces = devices.get("interfaces") or []
    unmovable = bool(devices.get("hostDevices") or devices.get("gpus")) or any("sriov" in i for i in interfaces)
    return {str(node): (f"{namespace}/{name}", unmovable)}


# ---------------------------------------------------------------------------------------------
# Start-up: kopf's own bookkeeping under our API group.


@kopf.on.startup(registry=REGISTRY)
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()  # no change handlers besides on.delete
    settings.peering.standalone = True  # leader election is ours (LeaderElector in kube/leases.py)
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.batching.worker_limit = config.workers
    memo.locks = {}
    memo.plan_locks = {}
    memo.plan_ahead = {}
    memo.replaced = {}
    memo.background = set()
    memo.plan_paused = {}
    memo.plan_wakeups = {}
    memo.released = {}
    memo.latest = {}
    memo.refresh_wakeups = {}
    memo.pacer = StartPacer(config.max_starts_per_second)
    memo.plan_written = {}
    memo.node_marks_sent = NodeMarkLog()
    memo.unvisited = {}
    memo.active_counted_at = -math.inf


@kopf.on.login(registry=REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


# ---------------------------------------------------------------------------------------------
# HostRefresh lifecycle.


def _lock(memo: kopf.Memo, table: str, key: str) -> asyncio.Lock:
    locks: dict[str, asyncio.Lock] = getattr(memo, table)
    return locks.setdefault(key, asyncio.Lock())


def _vmis(vmi_index: kopf.Index[str, tuple[str, bool]], node: str) -> VMIView | None:
    if node not in vmi_index:
        return None
    values = sorted(vmi_index[node])
    return VMIView(total=len(values), unmovable=tuple(name for name, unmovable in values if unmovable))


async def reconcile_refresh(body: kopf.Body, memo: kopf.Memo, indexes: Mapping[str, Any]) -> float | None:
    """One HostRefresh: snapshot -> decide -> write node marks, status, events.

    Returns the seconds until its next pass is due when the refresh waits for a start slot (start
    pacing) or for the API server to catch up (backlog), else None.
    """
    started = time.perf_counter()
    pacer: StartPacer = memo.pacer
    config: OperatorConfig = memo.config
    meta = body["metadata"]
    name = meta["name"]
    async with _lock(memo, "locks", name):
        replaced: dict[str, str] = memo.replaced
        if replaced.get(name) == meta["resourceVersion"]:
            return None  # our own write replaced this version; its event brings the newer one
        hr = HostRefresh.model_validate({"spec": body.get("spec", {}), "status": body.get("status") or {}})
        node_name = hr.spec.node_name
        nodes: kopf.Index[str, NodeView] = indexes["node_index"]
        leases: kopf.Index[str, AgentView] = indexes["lease_index"]
        peers_index: kopf.Index[str, PeerView] = indexes["refresh_index"]
        node = next(iter(nodes[node_name]), None) if node_name in nodes else None
        agent = next(iter(leases[node_name]), AgentView()) if node_name in leases else AgentView()
        peers = tuple(p for p in peers_index.get(node_name, []) if p.name != name)
        plan_name = _plan_of(meta)
        plan_paused = memo.plan_paused.get(plan_name) if plan_name else None
        inputs = RefreshInputs(
            hr=hr,
            name=name,
            generation=int(meta.get("generation") or 0),
            created_at=kube.parse_time(meta.get("creationTimestamp")) or datetime.now(UTC),
            deleting=bool(meta.get("deletionTimestamp")),
            node=node,
            agent=agent,
            peers=peers,
            plan_paused=plan_paused,
            vmis=_vmis(indexes["vmi_index"], node_name),
            now=datetime.now(UTC),
            start_at=pacer.slot(name),
        )
        decision = decide(inputs)
        if _grants_start(hr, decision.status) and inputs.start_at is None:
            # Ready to start and no slot yet: take one; if it lies ahead, wait for it (see pacing.py).
            slot = pacer.reserve(name, inputs.now)
            if slot > inputs.now:
                decision = decide(replace(inputs, start_at=slot))
        if _grants_start(hr, decision.status) and plan_name is None and _backlog(memo) > config.start_backlog:
            # The API server is behind (a burst of new objects, or of our writes): a start now would
            # put its first writes, and its agent's, in that queue and every running refresh's
            # reports behind them. Hold the grant a moment; nothing is written for that (but a
            # first visit). A plan's child was held before it was created (see reconcile_plan).
            if hr.status.phase is not None:
                return BACKLOG_RETRY_SECONDS
            retry_at = inputs.now + timedelta(seconds=BACKLOG_RETRY_SECONDS)
            decision = decide(replace(inputs, start_at=retry_at))
            pacer.delay(name, retry_at)
        if _grants_start(hr, decision.status) or is_terminal(decision.status.phase):
            pacer.forget(name)
        status = decision.status
        if _grants_start(hr, status):
            holder = await kube.claim_node(memo.client, node_name, name, node)
            if holder != name:
                # Another refresh holds the node (our view of it was behind): no grant, nothing
                # written; the next pass sees it in the index and says so (NodeBusy).
                log.info("HostRefresh %s: node %s is claimed by %s; the start waits", name, node_name, holder)
                return CLAIM_RETRY_SECONDS
            if CLAIM_ANNOTATION not in status.added_annotations:
                status.added_annotations = [*status.added_annotations, CLAIM_ANNOTATION]
        planned = None
        if decision.mark_node and node is not None:
            # Record what we are about to add before adding it: a crash in between never leaves an
            # unrecorded mark behind (marks carry our name, so a recorded-but-absent one is harmless).
            planned = mark(
                node,
                name,
                status.added_taints,
                status.added_annotations,
                config.marker_annotations,
                taint=taints_node(hr.spec.scope),
            )
            status.added_taints, status.added_annotations = planned.added_taints, planned.added_annotations
        new_status = kube.operator_status_json(status)
        old_status = kube.operator_status_json(hr.status)
        if new_status != old_status:
            written = await kube.patch_refresh_status(memo.client, name, meta["resourceVersion"], new_status)
            if not written:
                return None  # someone moved the object on; its next event reconciles again
            replaced[name] = meta["resourceVersion"]
            if plan_name and status.phase in PLAN_WAKING_PHASES and status.phase != hr.status.phase:
                # The plan learns of a freed slot from our write, not from its echo through the watch.
                known: dict[str, OwnedRefresh] = memo.plan_ahead.setdefault(plan_name, {})
                known[name] = kube.owned_refresh(name, body.get("spec", {}), new_status)
                _wake_plan(memo, plan_name)
            for event in decision.events:
                _event(memo, body, event.type, event.reason, event.message)
            _observe_transition(hr, status.phase, node_name, status)
        # Node marks only when the node (as the index shows it) lacks them or still has them, and not
        # again while our own patch has yet to come back through the watch (it would only conflict).
        sent: NodeMarkLog = memo.node_marks_sent
        if decision.mark_node and node is not None and planned is not None and not planned.empty:
            if sent.due(name, "mark"):
                await kube.patch_node_marks(
                    memo.client,
                    node_name,
                    lambda view: mark(
                        view,
                        name,
                        status.added_taints,
                        status.added_annotations,
                        config.marker_annotations,
                        taint=taints_node(hr.spec.scope),
                    ),
                    node,
                )
        elif decision.unmark_node and node is not None:
            stale = unmark(node, name, status.added_taints, status.added_annotations)
            if not stale.empty and sent.due(name, "unmark"):
                await kube.patch_node_marks(
                    memo.client,
                    node_name,
                    lambda view: unmark(view, name, status.added_taints, status.added_annotations),
                    node,
                )
        memo.released[name] = decision.release
        report = hr.status.agent
        nested_since = report.nested_since if report is not None and not is_terminal(status.phase) else None
        metrics.NESTED_NOW.set(node_name, nested_since)
    metrics.RECONCILE_SECONDS.labels("HostRefresh").observe(time.perf_counter() - started)
    due = pacer.slot(name)
    ahead = (due - inputs.now).total_seconds() if due is not None else 0.0
    return ahead if ahead > 0 else None  # a slot already due waits only on other reasons: the usual pass


def _background(memo: kopf.Memo, work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work`` beside the caller (kept referenced until done; its failure is logged)."""
    tasks: set[asyncio.Task[Any]] = memo.background
    task = asyncio.create_task(work)
    tasks.add(task)

    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background reconcile failed", exc_info=task.exception())

    task.add_done_callback(done)


def _event(memo: kopf.Memo, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event about ``body`` beside the reconcile (built now, from this version of the object)."""
    config: OperatorConfig = memo.config
    event = kube.event_body(body, type_, reason, message, config.events_namespace, config.identity, datetime.now(UTC))
    _background(memo, kube.post_event(memo.client, event))


def _plan_of(meta: Mapping[str, Any]) -> str | None:
    """The RefreshPlan that created a HostRefresh (its label), None for a standalone one."""
    plan_name: str | None = (meta.get("labels") or {}).get(PLAN_LABEL)
    return plan_name


def _grants_start(before: HostRefresh, after: HostRefreshStatus) -> bool:
    """Whether a decision lets a refresh that had not started begin."""
    return before.status.directive in (None, Directive.WAIT) and after.directive == Directive.PROCEED


def _wake_plan(memo: kopf.Memo, plan_name: str) -> None:
    """A child ended or fails: its plan re-plans now (a slot may have freed), not at its next tick."""
    wakeups: dict[str, asyncio.Event] = memo.plan_wakeups
    wakeups.setdefault(plan_name, asyncio.Event()).set()


def _observe_transition(hr: HostRefresh, phase: Any, node: str, status: Any) -> None:
    previous = hr.status.phase
    if phase == previous:
        return
    if previous and previous in status.phase_timestamps and phase in status.phase_timestamps:
        spent = (status.phase_timestamps[phase] - status.phase_timestamps[previous]).total_seconds()
        metrics.PHASE_SECONDS.labels(str(previous)).observe(max(spent, 0.0))
    if is_terminal(phase):
        metrics.REFRESHES.labels(str(phase)).inc()
        metrics.NESTED_SECONDS.labels(node).set(status.nested_seconds or 0.0)


def _indexes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in ("node_index", "lease_index", "refresh_index", "vmi_index", "plan_children")}


@kopf.on.event(GROUP, VERSION, "hostrefreshes", registry=REGISTRY)
async def refresh_event(event: kopf.RawEvent, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Hand the newest version to the object's reconcile loop and wake it; nothing slow here.

    Bursts of events (the agent reporting, our own writes coming back) coalesce into one reconcile
    of the newest version, instead of one reconcile (and a write that fails with 409) per stale event.
    """
    latest: dict[str, kopf.Body] = memo.latest
    wakeups: dict[str, asyncio.Event] = memo.refresh_wakeups
    plan_name = _plan_of(body["metadata"])
    if event.get("type") == "DELETED":
        metrics.NESTED_NOW.set(str((body.get("spec") or {}).get("nodeName")), None)
        latest.pop(name, None)
        wakeups.pop(name, None)
        memo.pacer.forget(name)
        memo.node_marks_sent.forget(name)
        memo.unvisited.pop(name, None)
        memo.replaced.pop(name, None)
        if plan_name:
            memo.plan_ahead.get(plan_name, {}).pop(name, None)
        return
    latest[name] = body
    wakeups.setdefault(name, asyncio.Event()).set()
    phase = (body.get("status") or {}).get("phase")
    unvisited: dict[str, float] = memo.unvisited
    if phase:
        unvisited.pop(name, None)
    else:
        unvisited.setdefault(name, time.monotonic())
    if plan_name and phase in PLAN_WAKING_PHASES:
        # Usually the plan was woken by our write of this phase already (see reconcile_refresh); the
        # echo wakes it only when the write was not ours (another replica before a failover).
        known = memo.plan_ahead.get(plan_name, {}).get(name)
        if known is None or known.phase != phase:
            _wake_plan(memo, plan_name)


@kopf.daemon(GROUP, VERSION, "hostrefreshes", registry=REGISTRY)
async def refresh_daemon(
    name: str, body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **kwargs: Any
) -> None:
    """The reconcile loop of one HostRefresh: on every change, and at least every ``refresh_interval``
    while it waits to start or ``follow_interval`` while it is under way (deadlines, silent agents and
    admission waits need no event). It ends once the object is terminal.
    """
    config: OperatorConfig = memo.config
    latest: dict[str, kopf.Body] = memo.latest
    wakeups: dict[str, asyncio.Event] = memo.refresh_wakeups
    wake = wakeups.setdefault(name, asyncio.Event())
    wake.set()  # first pass at once
    next_pass = config.refresh_interval
    while not stopped:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=next_pass)
        wake.clear()
        if stopped:
            break
        current = latest.get(name, body)
        if not _guarded(current):
            continue  # kopf adds its finalizer first; that write's event wakes us again
        start_in = await reconcile_refresh(current, memo, _indexes(kwargs))
        # A refresh under way needs a pass only for deadlines and the agent's signs of life (seconds
        # matter little there); one waiting to start also for node and Lease changes, which do not
        # wake it. Waiting for a start slot: come back when it is due.
        under_way = (current.get("status") or {}).get("directive") in (Directive.PROCEED, Directive.ROLL_BACK)
        periodic = config.follow_interval if under_way else config.refresh_interval
        next_pass = _next_pass(periodic, start_in)
        _count_active(memo, kwargs["refresh_index"])
        terminal = is_terminal((current.get("status") or {}).get("phase"))
        if terminal and not current["metadata"].get("deletionTimestamp"):
            break


def _next_pass(periodic: float, due_in: float | None) -> float:
    """Seconds until a reconcile loop's next pass: the periodic one, or sooner when something is due."""
    return periodic if due_in is None else min(periodic, due_in + 0.001)


def _sooner(current: float | None, candidate: float) -> float:
    return candidate if current is None else min(current, candidate)


def _count_active(memo: kopf.Memo, index: kopf.Index[str, PeerView]) -> None:
    """Set the active-refreshes gauge, at most once a second (it walks every HostRefresh)."""
    now = time.monotonic()
    if now - memo.active_counted_at < 1.0:
        return
    memo.active_counted_at = now
    metrics.ACTIVE.set(sum(1 for key in index for p in index[key] if p.started and not p.terminal))


#: How soon a start held back by the backlog is tried again.
BACKLOG_RETRY_SECONDS = 0.1
#: A start found the node claimed by another refresh: look again after this long.
CLAIM_RETRY_SECONDS = 2.0
#: A HostRefresh seen without any status counts towards the backlog for this long at most.
UNVISITED_SECONDS = 10.0


def _backlog(memo: kopf.Memo) -> int:
    """Work the API server has still to take from us: our unanswered writes, and new HostRefresh
    objects not yet given a status (a burst of them is a burst of writes: theirs, kopf's, ours)."""
    unvisited: dict[str, float] = memo.unvisited
    fresh = time.monotonic() - UNVISITED_SECONDS
    return kube.WRITES.count + sum(1 for seen in unvisited.values() if seen > fresh)


#: Child phases that change what its plan may do: a slot frees, or the health gate counts a failure.
PLAN_WAKING_PHASES = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED, Phase.ROLLING_BACK})


def _guarded(body: kopf.Body) -> bool:
    """Whether deletion of this object waits for the operator (its finalizer is on, or it is going).

    No refresh is granted before that: deleting a granted refresh without the finalizer would leave
    its node half-way with nobody to roll it back. Waiting also keeps the first status write from
    racing kopf's finalizer patch (one of the two would fail and go again).
    """
    meta = body["metadata"]
    return bool(meta.get("deletionTimestamp")) or FINALIZER in (meta.get("finalizers") or [])


@kopf.on.delete(GROUP, VERSION, "hostrefreshes", registry=REGISTRY)
async def refresh_deleted(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """The finalizer: a refresh deleted mid-way rolls back (before Retiring) or finishes first."""
    await reconcile_refresh(body, memo, _indexes(kwargs))
    if not memo.released.get(body["metadata"]["name"]):
        raise kopf.TemporaryError("waiting for the refresh to roll back or finish before deletion", delay=1)


# ---------------------------------------------------------------------------------------------
# RefreshPlan rollout.


async def reconcile_plan(body: kopf.Body, memo: kopf.Memo, indexes: Mapping[str, Any]) -> float | None:
    """One RefreshPlan: snapshot -> plan -> create the children whose start slot is due, write status.

    Returns the seconds until the next child's start slot when some wait for one (start pacing:
    a wave is created as its starts come due, not all at once), else None.
    """
    started = time.perf_counter()
    pacer: StartPacer = memo.pacer
    config: OperatorConfig = memo.config
    due_in: float | None = None
    meta = body["metadata"]
    name = meta["name"]
    async with _lock(memo, "plan_locks", name):
        spec = RefreshPlanSpec.model_validate(body.get("spec", {}))
        status = RefreshPlanStatus.model_validate(body.get("status") or {})
        nodes_index: kopf.Index[str, NodeView] = indexes["node_index"]
        leases: kopf.Index[str, AgentView] = indexes["lease_index"]
        selected: list[NodeView] = []
        for key in nodes_index:
            for view in nodes_index[key]:
                if spec.all_nodes or (not spec.node_selector.is_empty() and spec.node_selector.matches(view.labels)):
                    selected.append(view)
        children: dict[str, OwnedRefresh] = {o.name: o for o in indexes["plan_children"].get(name, [])}
        owned, ahead = merge_ahead(children, memo.plan_ahead.get(name, {}))
        memo.plan_ahead[name] = ahead
        agents = {key: next(iter(leases[key]), AgentView()) for key in leases}
        decision = plan(
            PlanInputs(
                name=name,
                generation=int(meta.get("generation") or 0),
                spec=spec,
                status=status,
                nodes=tuple(selected),
                agents=agents,
                owned=owned,
                now=datetime.now(UTC),
            )
        )
        memo.plan_paused[name] = decision.status.paused
        template = spec.template.to_json()
        now = datetime.now(UTC)
        for node in decision.start:
            child = refresh_name(name, node, spec.target.version)
            slot = pacer.reserve(child, now)  # the child finds it at its first visit: no second wait
            # Its start waits for the slot, and while the API server is behind (as a standalone
            # refresh's grant does, see reconcile_refresh): before the object exists, so waiting
            # costs no write and the child, once created, is granted at its first pass.
            wait = (slot - now).total_seconds()
            if wait <= 0 and _backlog(memo) > config.start_backlog:
                wait = BACKLOG_RETRY_SECONDS
            if wait > 0:
                due_in = _sooner(due_in, wait)
                decision.status.active -= 1  # not created yet: counted as pending until it is
                decision.status.pending += 1
                continue
            child_spec = {**template, "nodeName": node, "target": spec.target.to_json()}
            ahead[child] = OwnedRefresh(child, node, spec.target.version, None)
            created = await kube.create_refresh(memo.client, child, body, node, child_spec)
            _event(memo, body, "Normal", "NodeRefreshStarted", f"created {child} for {node}")
            if created is not None:
                # The child's first pass now, from the object as created: its grant need not wait for
                # the watch to bring the object back and kopf to start its daemon.
                _background(memo, reconcile_refresh(kopf.Body(cast(kopf.RawBody, created)), memo, indexes))
        new_status = decision.status.to_json()
        if new_status != status.to_json():
            written: dict[str, float] = memo.plan_written
            since = time.monotonic() - written.get(name, -math.inf)
            if counts_only(status, decision.status) and since < config.plan_interval:
                due_in = _sooner(due_in, config.plan_interval - since)  # counters only: the next pass writes
            elif await kube.patch_plan_status(memo.client, name, meta["resourceVersion"], new_status):
                written[name] = time.monotonic()
        for type_, reason, message in decision.events:
            _event(memo, body, type_, reason, message)
        st = decision.status
        metrics.set_plan(
            name,
            {"pending": st.pending, "active": st.active, "succeeded": st.succeeded, "failed": st.failed},
            st.waves_started,
            st.paused,
            halted=any(
                c.type == "Paused" and c.status == "True" and c.reason == "FailureThresholdReached"
                for c in st.conditions
            ),
        )
    metrics.RECONCILE_SECONDS.labels("RefreshPlan").observe(time.perf_counter() - started)
    return due_in


@kopf.on.event(GROUP, VERSION, "refreshplans", registry=REGISTRY)
async def plan_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    if event.get("type") == "DELETED":
        metrics.forget_plan(body["metadata"]["name"])
        return
    await reconcile_plan(body, memo, _indexes(kwargs))


@kopf.daemon(GROUP, VERSION, "refreshplans", registry=REGISTRY)
async def plan_daemon(name: str, body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
    """Re-plan when a child changes phase (a slot frees) and at least every tick (windows, soak).

    kopf keeps a daemon's ``body`` up to date, so each pass sees the plan's latest version.
    """
    config: OperatorConfig = memo.config
    wakeups: dict[str, asyncio.Event] = memo.plan_wakeups
    wake = wakeups.setdefault(name, asyncio.Event())
    next_pass = config.plan_interval
    while not stopped:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=next_pass)
        wake.clear()
        if stopped:
            break
        due_in = await reconcile_plan(body, memo, _indexes(kwargs))
        next_pass = _next_pass(config.plan_interval, due_in)
