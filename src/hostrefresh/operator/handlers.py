"""The kopf layer, thin: indexes that keep caches, and handlers that put work on the queues.

Every HostRefresh and RefreshPlan is reconciled by the workers of its kind's work queue
(``state.refreshes``, ``state.plans``; started in main.py) and nowhere else: a watch event stores the
object's newest version and adds its name to the queue; the delete handler (kopf's finalizer) waits
until a pass has released the object. The reconcile passes are in reconcile_refresh.py and
reconcile_plan.py, the decisions they call in lifecycle.py and waves.py.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from hostrefresh.api import GROUP, VERSION, RefreshScope, is_terminal
from hostrefresh.api.names import FINALIZER, HOST_VERSION_KEY, PLAN_LABEL, QEMU_VERSION_KEY
from hostrefresh.api.phases import left_unfinished
from hostrefresh.kube.errors import Backoff
from hostrefresh.kube.names import AGENT_COMPONENT_LABEL
from hostrefresh.operator import metrics, objects
from hostrefresh.operator.bookkeeping import NoDiffBase
from hostrefresh.operator.reconcile_refresh import PLAN_WAKING_PHASES
from hostrefresh.operator.snapshot import plan_of
from hostrefresh.operator.state import Caches, OperatorState
from hostrefresh.operator.views import AgentView, NodeView, PeerView
from hostrefresh.operator.waves import OwnedRefresh

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
    view = objects.node_view(body)
    metrics.NODE_VERSIONS.set(
        name, view.annotations.get(HOST_VERSION_KEY, ""), view.annotations.get(QEMU_VERSION_KEY, "")
    )
    return {name: view}


def _deleted(event: kopf.RawEvent, **_: Any) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event("nodes", when=_deleted, registry=REGISTRY)
async def node_deleted(name: str, **_: Any) -> None:
    """A deleted Node runs nothing any more: its version series goes (kopf drops it from the index)."""
    metrics.NODE_VERSIONS.forget(name)


@kopf.index("coordination.k8s.io", "v1", "leases", labels=AGENT_COMPONENT_LABEL, registry=REGISTRY)
async def lease_index(
    name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[str, AgentView]:
    state: OperatorState = memo.state
    meta = body.get("metadata", {})
    node = objects.heartbeat_node(
        name, namespace, meta.get("labels") or {}, state.config.namespace, meta.get("annotations") or {}
    )
    if node is None:
        return {}
    # Each renewal is a watch event: the time it arrives is the operator's own clock's view of it. A
    # relist shows the same renewal again: it keeps the time the renewal was first seen.
    view = objects.agent_view(body).seen(state.heartbeats.get(node), datetime.now(UTC))
    state.heartbeats[node] = view
    return {node: view}


@kopf.index(GROUP, VERSION, "hostrefreshes", registry=REGISTRY)
async def refresh_index(
    name: str, spec: kopf.Spec, status: kopf.Status, meta: kopf.Meta, **_: Any
) -> dict[str, PeerView]:
    created = objects.parse_time(meta.get("creationTimestamp")) or datetime.now(UTC)
    directive = status.get("directive")
    return {
        str(spec.get("nodeName")): PeerView(
            name=name,
            created_at=created,
            started=directive in ("Proceed", "RollBack"),
            terminal=is_terminal(status.get("phase")),
            unfinished=left_unfinished(status),
            scope=str(spec.get("scope") or RefreshScope.HOST),
        )
    }


@kopf.index(GROUP, VERSION, "hostrefreshes", labels={PLAN_LABEL: kopf.PRESENT}, registry=REGISTRY)
async def plan_children(
    name: str, spec: kopf.Spec, status: kopf.Status, labels: kopf.Labels, annotations: kopf.Annotations, **_: Any
) -> dict[str, OwnedRefresh]:
    return {str(labels[PLAN_LABEL]): objects.owned_refresh(name, spec, status, annotations)}


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
    state: OperatorState = memo.state
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()  # no change handlers besides on.delete
    settings.peering.standalone = True  # leader election is ours (LeaderElector in kube/leases.py)
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = Backoff(first=1.0, most=5.0)  # never gives up: see Backoff
    settings.queueing.worker_limit = state.config.workers


@kopf.on.login(registry=REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def _bind_caches(state: OperatorState, kwargs: dict[str, Any]) -> None:
    """kopf hands its (live) indexes to handlers only: keep them for the workers at the first event."""
    if state.caches is None:
        state.caches = Caches(
            nodes=kwargs["node_index"],
            agents=kwargs["lease_index"],
            refreshes_by_node=kwargs["refresh_index"],
            children_by_plan=kwargs["plan_children"],
            vmis_by_node=kwargs["vmi_index"],
        )


# ---------------------------------------------------------------------------------------------
# HostRefresh: events to the queue; deletion waits for a pass to release it.


@kopf.on.event(GROUP, VERSION, "hostrefreshes", registry=REGISTRY)
async def refresh_event(event: kopf.RawEvent, name: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Store the newest version and queue a pass; nothing slow here (bursts coalesce in the queue)."""
    state: OperatorState = memo.state
    _bind_caches(state, kwargs)
    plan_name = plan_of(body["metadata"])
    if event.get("type") == "DELETED":
        metrics.NESTED_NOW.set(str((body.get("spec") or {}).get("nodeName")), None)
        state.forget_refresh(name, plan_name)
        return
    state.latest_refresh[name] = body
    state.refreshes.add(name)
    phase = (body.get("status") or {}).get("phase")
    if phase:
        state.unvisited.pop(name, None)
    else:
        state.unvisited.setdefault(name, time.monotonic())
    if plan_name and phase in PLAN_WAKING_PHASES:
        # Usually the plan was woken by our write of this phase already (see reconcile_refresh); the
        # echo wakes it only when the write was not ours (another replica before a failover).
        known = state.plan_ahead.get(plan_name, {}).get(name)
        if known is None or known.phase != phase:
            state.plans.add(plan_name)
    _count_active(state)


@kopf.on.delete(GROUP, VERSION, "hostrefreshes", registry=REGISTRY)
async def refresh_deleted(name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The finalizer: a refresh deleted mid-way rolls back (before Retiring) or finishes first."""
    state: OperatorState = memo.state
    state.latest_refresh[name] = body
    if not await state.wait_released(name, RELEASE_WAIT_SECONDS):
        raise kopf.TemporaryError("waiting for the refresh to roll back or finish before deletion", delay=1)


#: How long the finalizer waits for a pass to release a deleted refresh before kopf retries it. A refresh
#: that never started, or has ended, is released by its next pass; one under way rolls back first.
RELEASE_WAIT_SECONDS = 5.0


def _count_active(state: OperatorState) -> None:
    """Set the active-refreshes gauge, at most once a second (it walks every HostRefresh)."""
    now = time.monotonic()
    if now - state.active_counted_at < 1.0 or state.caches is None:
        return
    state.active_counted_at = now
    index = state.caches.refreshes_by_node
    active = [p.scope for key in index for p in index[key] if p.started and not p.terminal]
    for scope in metrics.SCOPES:
        metrics.ACTIVE.labels(scope).set(active.count(scope))


# ---------------------------------------------------------------------------------------------
# RefreshPlan: events to the queue.


@kopf.on.event(GROUP, VERSION, "refreshplans", registry=REGISTRY)
async def plan_event(event: kopf.RawEvent, name: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    state: OperatorState = memo.state
    _bind_caches(state, kwargs)
    before = state.latest_plan.get(name)
    if event.get("type") == "DELETED":
        metrics.forget_plan(name)
        state.forget_plan(name)
        _wake_other_plans(state, name)  # the nodes it held from a newer plan are that plan's now
        return
    state.latest_plan[name] = body
    state.plans.add(name)
    if before is None or (before.get("metadata") or {}).get("generation") != body["metadata"].get("generation"):
        _wake_other_plans(state, name)  # its selection or target decides which nodes others may take


def _wake_other_plans(state: OperatorState, name: str) -> None:
    for other in state.latest_plan:
        if other != name:
            state.plans.add(other)
