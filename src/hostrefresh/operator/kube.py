"""The operator's I/O: turn API objects into views, and write status, node marks and children.

Every write that depends on what was read carries the ``resourceVersion`` it was computed from, so
a stale decision (another replica, a racing timer) fails with 409 instead of overwriting newer state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Event, Node
from lightkube.types import PatchType

from hostrefresh.api import HostRefreshStatus, Phase
from hostrefresh.api.names import label_value
from hostrefresh.kube.resources import (
    FINALIZER,
    NODE_ANNOTATION,
    NODE_LABEL,
    PLAN_LABEL,
    HostRefreshResource,
    RefreshPlanResource,
    agent_lease_name,
)
from hostrefresh.operator import metrics
from hostrefresh.operator.nodemarks import CLAIM_ANNOTATION, NodeMarkPatch
from hostrefresh.operator.views import AgentView, NodeView, Taint, is_terminal
from hostrefresh.operator.waves import OwnedRefresh

T = TypeVar("T")
CONFLICT = 409
NOT_FOUND = 404
log = logging.getLogger("hostrefresh.operator")
#: Where the Events of our (cluster-scoped) objects go: like a Node's, in ``default``.
EVENTS_NAMESPACE = "default"
EVENT_COMPONENT = "hostrefresh-operator"
MAX_EVENT_MESSAGE = 1024


class WritesInFlight:
    """The operator's API writes sent and not yet answered: how far the API server is behind on them.

    ``with WRITES: await client.patch(...)``. Start grants wait while it is high (see handlers).
    """

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> None:
        self.count += 1
        metrics.WRITES_IN_FLIGHT.set(self.count)

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        metrics.WRITES_IN_FLIGHT.set(self.count)


WRITES = WritesInFlight()


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (as the API server writes it) to an aware datetime."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def node_view(body: Mapping[str, Any]) -> NodeView:
    """A Node object as the decision functions see it."""
    meta = body.get("metadata", {})
    spec = body.get("spec", {}) or {}
    conditions = (body.get("status", {}) or {}).get("conditions", []) or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = tuple(Taint(t["key"], t.get("effect", ""), t.get("value", "") or "") for t in spec.get("taints", []) or [])
    return NodeView(
        name=meta["name"],
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        taints=taints,
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def heartbeat_node(
    name: str,
    namespace: str | None,
    labels: Mapping[str, str],
    agent_namespace: str,
    annotations: Mapping[str, str] | None = None,
) -> str | None:
    """The node whose agent a Lease is the heartbeat of, or None when it is nobody's.

    Only the Lease the node's agent renews counts: in the agents' namespace (where the chart's RBAC
    lets only agents write them), under the node's own Lease name, labelled for that same node. A
    Lease elsewhere, or with another name, could otherwise make a dead agent look alive. A node name
    too long for a label value is in the annotation of the same key; the label holds its short form.
    """
    node = (annotations or {}).get(NODE_ANNOTATION) or labels.get(NODE_LABEL)
    if namespace != agent_namespace or not node or name != agent_lease_name(node):
        return None
    if labels.get(NODE_LABEL) != label_value(node):
        return None
    return node


def agent_view(body: Mapping[str, Any], seen_at: datetime | None = None) -> AgentView:
    """An agent heartbeat Lease as the decision functions see it; ``seen_at``: when the operator saw it."""
    spec = body.get("spec", {}) or {}
    return AgentView(
        renewed_at=parse_time(spec.get("renewTime")),
        lease_seconds=int(spec.get("leaseDurationSeconds") or 30),
        seen_at=seen_at,
    )


def owned_refresh(name: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> OwnedRefresh:
    """A plan's HostRefresh as wave planning sees it (from the object, or from a status just written)."""
    conditions = status.get("conditions") or []
    phase = status.get("phase")
    return OwnedRefresh(
        name=name,
        node=str(spec.get("nodeName")),
        target_version=str((spec.get("target") or {}).get("version")),
        phase=Phase(phase) if phase else None,
        degraded=any(c.get("type") == "Degraded" and c.get("status") == "True" for c in conditions),
        completed_at=parse_time(status.get("completedAt")),
    )


def operator_status_json(status: HostRefreshStatus) -> dict[str, Any]:
    """The operator-owned part of a HostRefresh status (never ``agent``, the agent's own)."""
    out = status.to_json()
    out.pop("agent", None)
    return out


async def _patch_status(
    client: AsyncClient, resource: Any, op: str, name: str, resource_version: str, status: dict[str, Any]
) -> bool:
    """Merge-patch a status guarded by ``resource_version``; False when the object moved on (409) or is gone."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": status}
    metrics.API_REQUESTS.labels(op).inc()
    try:
        with WRITES:
            await client.patch(resource.Status, name, body, patch_type=PatchType.MERGE)
    except ApiError as exc:
        if exc.status.code in (CONFLICT, NOT_FOUND):
            return False
        raise
    return True


async def patch_refresh_status(client: AsyncClient, name: str, resource_version: str, status: dict[str, Any]) -> bool:
    """The operator's own HostRefresh status fields."""
    return await _patch_status(client, HostRefreshResource, "patch_refresh_status", name, resource_version, status)


async def _update_node(
    client: AsyncClient,
    node: str,
    known: NodeView | None,
    decide: Callable[[NodeView], Awaitable[tuple[dict[str, Any] | None, T]]],
    what: str,
    attempts: int = 5,
) -> T | None:
    """Read-decide-write a Node, the write guarded by the resourceVersion it was decided on.

    ``decide(view)`` returns the merge patch to write (None: nothing) and the result to return.
    ``known`` (the watch's view) saves a read; when it is stale (409: kubelets and others write nodes
    too) the node is read afresh and decided again. Returns None when the node does not exist.
    """
    view = known if known is not None and known.resource_version else None
    for _ in range(attempts):
        if view is None:
            metrics.API_REQUESTS.labels("get_node").inc()
            try:
                view = node_view((await client.get(Node, node)).to_dict())
            except ApiError as exc:
                if exc.status.code == NOT_FOUND:
                    return None
                raise
        body, result = await decide(view)
        if body is None:
            return result
        body.setdefault("metadata", {})["resourceVersion"] = view.resource_version
        metrics.API_REQUESTS.labels("patch_node").inc()
        try:
            with WRITES:
                await client.patch(Node, node, body, patch_type=PatchType.MERGE)
            return result
        except ApiError as exc:
            if exc.status.code == NOT_FOUND:
                return None
            if exc.status.code != CONFLICT:
                raise
        view = None
    raise RuntimeError(f"node {node} kept changing while {what}")


async def patch_node_marks(
    client: AsyncClient, node: str, compute: Callable[[NodeView], NodeMarkPatch], known: NodeView | None = None
) -> NodeMarkPatch | None:
    """Compute the marks patch from the node as known, write it guarded by its resourceVersion.

    Returns the patch applied (possibly empty), or None when the node does not exist.
    """

    async def decide(view: NodeView) -> tuple[dict[str, Any] | None, NodeMarkPatch]:
        patch = compute(view)
        if patch.empty:
            return None, patch
        body: dict[str, Any] = {"metadata": {}}
        if patch.annotations:
            body["metadata"]["annotations"] = patch.annotations
        if patch.taints is not None:
            body["spec"] = {"taints": patch.taints or None}
        return body, patch

    return await _update_node(client, node, known, decide, "updating its hostrefresh marks")


async def claim_node(client: AsyncClient, node: str, refresh: str, known: NodeView | None) -> str | None:
    """Make ``refresh`` the one refresh of ``node``; returns the holder afterwards (None: no such node).

    The claim is written guarded by the Node's resourceVersion, so of two refreshes claiming at once
    one write fails (409), re-reads, and finds the other holding it. A claim whose holder is gone or
    finished (a crash before it was released) is taken over, guarded the same way.
    """

    async def decide(view: NodeView) -> tuple[dict[str, Any] | None, str]:
        holder = view.annotations.get(CLAIM_ANNOTATION)
        if holder == refresh or (holder is not None and await _refresh_active(client, holder)):
            return None, holder
        return {"metadata": {"annotations": {CLAIM_ANNOTATION: refresh}}}, refresh

    return await _update_node(client, node, known, decide, f"claiming it for {refresh}")


async def _refresh_active(client: AsyncClient, name: str) -> bool:
    """Whether HostRefresh ``name`` exists and has not ended (its claim on a node still stands)."""
    metrics.API_REQUESTS.labels("get_refresh").inc()
    try:
        obj = await client.get(HostRefreshResource, name)
    except ApiError as exc:
        if exc.status.code == NOT_FOUND:
            return False
        raise
    status = obj.to_dict().get("status") or {}  # type: ignore[no-untyped-call]
    return not is_terminal(status.get("phase"))


async def create_refresh(
    client: AsyncClient, name: str, plan: Mapping[str, Any], node: str, spec: dict[str, Any]
) -> dict[str, Any] | None:
    """Create a plan's HostRefresh (owned by the plan): the object as created, None if it already exists."""
    meta = plan["metadata"]
    obj = {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "metadata": {
            "name": name,
            "labels": {PLAN_LABEL: meta["name"], NODE_LABEL: label_value(node)},
            # Born with the finalizer kopf would add at first sight: one write less, one round trip
            # sooner to the grant (nothing is granted before it is on).
            "finalizers": [FINALIZER],
            "ownerReferences": [
                {
                    "apiVersion": "hostrefresh.io/v1alpha1",
                    "kind": "RefreshPlan",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
    metrics.API_REQUESTS.labels("create_refresh").inc()
    try:
        with WRITES:
            created = await client.create(HostRefreshResource.from_dict(obj))
    except ApiError as exc:
        if exc.status.code == CONFLICT:
            return None
        raise
    out: dict[str, Any] = created.to_dict()
    return out


async def patch_plan_status(client: AsyncClient, name: str, resource_version: str, status: dict[str, Any]) -> bool:
    """A RefreshPlan's status (the operator is its only writer)."""
    return await _patch_status(client, RefreshPlanResource, "patch_plan_status", name, resource_version, status)


def event_body(
    obj: Mapping[str, Any], type_: str, reason: str, message: str, namespace: str, instance: str, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event about a HostRefresh or RefreshPlan, shaped so kubectl finds it.

    The objects are cluster-scoped, so ``involvedObject`` carries no namespace: ``kubectl describe``
    looks for Events whose ``involvedObject.namespace`` is empty (kopf's own poster would put one
    there, and describe would show nothing). The Event itself lives in ``namespace`` (``default``,
    where ``kubectl events --for hostrefresh/NAME`` looks without flags, as for Nodes).
    """
    meta = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion") or "hostrefresh.io/v1alpha1",
        "kind": obj.get("kind") or "HostRefresh",
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if len(message) > MAX_EVENT_MESSAGE:
        message = message[: MAX_EVENT_MESSAGE - 3] + "..."
    stamp = now.isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": namespace},
        "involvedObject": {k: v for k, v in ref.items() if v},
        "type": type_,
        "reason": reason,
        "message": message,
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": EVENT_COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        # With microseconds, so Events of the same second keep their order (phase changes come fast).
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": "Reconcile",
    }


async def post_event(client: AsyncClient, body: dict[str, Any]) -> None:
    """Create an Event (built by ``event_body``); a failure is logged, never raised (Events are auxiliary)."""
    try:
        event = cast(Event, Event.from_dict(body))
        await client.create(event)
    except ApiError as exc:
        log.warning("could not post Event %s: %s", body.get("reason"), exc.status.message)
