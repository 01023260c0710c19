"""The operator's writes to the API server: status, node marks, claims, children, Events.

Every write that depends on what was read carries the ``resourceVersion`` it was computed from, so
a stale decision (another replica, a racing timer) fails with 409 instead of overwriting newer state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Event, Node
from lightkube.types import PatchType

from hostrefresh.api import API_VERSION, HostRefresh, RefreshPlan, is_terminal
from hostrefresh.api.names import (
    CLAIM_ANNOTATION,
    FINALIZER,
    NODE_LABEL,
    PLAN_LABEL,
    RETRY_OF_ANNOTATION,
    label_value,
)
from hostrefresh.kube.errors import is_transient
from hostrefresh.kube.link import ApiLink
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource
from hostrefresh.operator import metrics
from hostrefresh.operator.eventseries import EventKey, Recorded, SeriesLog, event_key, observed_at, series_patch
from hostrefresh.operator.nodemarks import NodeMarkPatch
from hostrefresh.operator.objects import node_view
from hostrefresh.operator.views import NodeView

T = TypeVar("T")
CONFLICT = 409
NOT_FOUND = 404
log = logging.getLogger("hostrefresh.operator")


class WritesInFlight:
    """The operator's API writes sent and not yet answered: how far the API server is behind on them.

    ``with writes: await client.patch(...)``. Start grants wait while it is high (see state.backlog).
    One per writer (``writer.KubeWriter``). Each answer, or failure, also tells ``link`` whether the API
    server is answering (see ``hostrefresh.kube.link``).
    """

    def __init__(self, link: ApiLink | None = None) -> None:
        self.count = 0
        self.link = link or ApiLink()

    def __enter__(self) -> None:
        self.count += 1
        metrics.WRITES_IN_FLIGHT.set(self.count)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.count -= 1
        metrics.WRITES_IN_FLIGHT.set(self.count)
        if exc is None or (isinstance(exc, Exception) and not is_transient(exc)):
            self.link.answered()
        elif isinstance(exc, Exception):  # (a cancellation says nothing of the API server)
            self.link.unanswered()


async def _patch_status(
    client: AsyncClient,
    writes: WritesInFlight,
    resource: Any,
    op: str,
    name: str,
    resource_version: str,
    status: dict[str, Any],
) -> bool:
    """Merge-patch a status guarded by ``resource_version``; False when the object moved on (409) or is gone."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": status}
    metrics.API_REQUESTS.labels(op).inc()
    try:
        with writes:
            await client.patch(resource.Status, name, body, patch_type=PatchType.MERGE)
    except ApiError as exc:
        if exc.status.code in (CONFLICT, NOT_FOUND):
            return False
        raise
    return True


async def patch_refresh_status(
    client: AsyncClient, writes: WritesInFlight, name: str, resource_version: str, status: dict[str, Any]
) -> bool:
    """The operator's own HostRefresh status fields."""
    return await _patch_status(
        client, writes, HostRefreshResource, "patch_refresh_status", name, resource_version, status
    )


async def _update_node(
    client: AsyncClient,
    writes: WritesInFlight,
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
            with writes:
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
    client: AsyncClient,
    writes: WritesInFlight,
    node: str,
    compute: Callable[[NodeView], NodeMarkPatch],
    known: NodeView | None = None,
) -> NodeMarkPatch | None:
    """Compute the marks patch (taints, annotations, labels) from the node as known, write it guarded by
    its resourceVersion.

    Returns the patch applied (possibly empty), or None when the node does not exist.
    """

    async def decide(view: NodeView) -> tuple[dict[str, Any] | None, NodeMarkPatch]:
        patch = compute(view)
        if patch.empty:
            return None, patch
        body: dict[str, Any] = {"metadata": {}}
        if patch.annotations:
            body["metadata"]["annotations"] = patch.annotations
        if patch.labels:
            body["metadata"]["labels"] = patch.labels
        if patch.taints is not None:
            body["spec"] = {"taints": patch.taints or None}
        return body, patch

    return await _update_node(client, writes, node, known, decide, "updating its hostrefresh marks")


async def claim_node(
    client: AsyncClient, writes: WritesInFlight, node: str, refresh: str, known: NodeView | None
) -> str | None:
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

    return await _update_node(client, writes, node, known, decide, f"claiming it for {refresh}")


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
    client: AsyncClient,
    writes: WritesInFlight,
    name: str,
    plan: Mapping[str, Any],
    node: str,
    spec: dict[str, Any],
    retry_of: str | None = None,
) -> dict[str, Any] | None:
    """Create a plan's HostRefresh (owned by the plan): the object as created, None if it already exists."""
    meta = plan["metadata"]
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": HostRefresh.KIND,
        "metadata": {
            "name": name,
            "labels": {PLAN_LABEL: meta["name"], NODE_LABEL: label_value(node)},
            # Born with the finalizer kopf would add at first sight: one write less, one round trip
            # sooner to the grant (nothing is granted before it is on).
            "finalizers": [FINALIZER],
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": RefreshPlan.KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
    if retry_of is not None:
        obj["metadata"]["annotations"] = {RETRY_OF_ANNOTATION: retry_of}
    metrics.API_REQUESTS.labels("create_refresh").inc()
    try:
        with writes:
            created = await client.create(HostRefreshResource.from_dict(obj))
    except ApiError as exc:
        if exc.status.code == CONFLICT:
            return None
        raise
    out: dict[str, Any] = created.to_dict()
    return out


async def patch_plan_status(
    client: AsyncClient, writes: WritesInFlight, name: str, resource_version: str, status: dict[str, Any]
) -> bool:
    """A RefreshPlan's status (the operator is its only writer)."""
    return await _patch_status(client, writes, RefreshPlanResource, "patch_plan_status", name, resource_version, status)


async def post_event(client: AsyncClient, body: dict[str, Any]) -> None:
    """Create one Event (built by ``event_body``), repeat or not (``EventRecorder`` counts repeats); a
    failure is logged, never raised (Events are auxiliary)."""
    try:
        event = cast(Event, Event.from_dict(body))
        await client.create(event)
    except ApiError as exc:
        log.warning("could not post Event %s: %s", body.get("reason"), exc.status.message)


class EventRecorder:
    """Posts Events, a repeat as a count on the Event first posted (``eventseries`` decides which).

    Posts of the same key are serialized, so a repeat waits for the Event it updates to exist and
    learns its name. Nothing here ever raises for the API server's sake: an update that fails (the
    Event expired or was deleted, the API server refused) creates a new Event, and a failed create is
    logged; the next repeat then starts a new Event.
    """

    def __init__(self, client: AsyncClient, log_: SeriesLog | None = None) -> None:
        self.client = client
        self.series = log_ if log_ is not None else SeriesLog()
        self._serial: dict[EventKey, tuple[asyncio.Lock, int]] = {}

    async def post(self, body: dict[str, Any]) -> None:
        key = event_key(body)
        lock, users = self._serial.get(key) or (asyncio.Lock(), 0)
        self._serial[key] = (lock, users + 1)
        try:
            async with lock:
                await self._record(key, body)
        except Exception as exc:
            if not (isinstance(exc, ApiError) or is_transient(exc)):
                raise
            self.series.forget(key)
            log.warning("could not post Event %s: %s", body.get("reason"), exc)
        finally:
            lock, users = self._serial[key]
            if users <= 1:
                del self._serial[key]
            else:
                self._serial[key] = (lock, users - 1)

    async def _record(self, key: EventKey, body: dict[str, Any]) -> None:
        now = observed_at(body)
        namespace = (body.get("metadata") or {}).get("namespace")
        repeat = self.series.repeat(key, now)
        if repeat is not None:
            try:
                await self.client.patch(
                    Event, repeat.name, series_patch(repeat), namespace=namespace, patch_type=PatchType.MERGE
                )
            except ApiError as exc:  # gone (Events expire) or refused: this one starts a new Event
                log.info(
                    "could not count a repeat on Event %s (%s); posting a new one", repeat.name, exc.status.message
                )
                self.series.forget(key)
            else:
                self.series.record(key, repeat)
                return
        created = await self.client.create(cast(Event, Event.from_dict(body)))
        name = created.metadata.name if created.metadata is not None else None
        if name:
            self.series.record(key, Recorded(name, int(created.count or 1), now))


class KubeWriter:
    """The ``writer.Writer`` of a running operator: the functions above, on one client and one counter."""

    def __init__(self, client: AsyncClient, link: ApiLink | None = None) -> None:
        self.client = client
        self.writes = WritesInFlight(link)
        self.events = EventRecorder(client)

    @property
    def in_flight(self) -> int:
        return self.writes.count

    async def patch_refresh_status(self, name: str, resource_version: str, status: dict[str, Any]) -> bool:
        return await patch_refresh_status(self.client, self.writes, name, resource_version, status)

    async def patch_plan_status(self, name: str, resource_version: str, status: dict[str, Any]) -> bool:
        return await patch_plan_status(self.client, self.writes, name, resource_version, status)

    async def claim_node(self, node: str, refresh: str, known: NodeView | None) -> str | None:
        return await claim_node(self.client, self.writes, node, refresh, known)

    async def patch_node_marks(
        self, node: str, compute: Callable[[NodeView], NodeMarkPatch], known: NodeView | None
    ) -> NodeMarkPatch | None:
        return await patch_node_marks(self.client, self.writes, node, compute, known)

    async def create_refresh(
        self, name: str, plan: Mapping[str, Any], node: str, spec: dict[str, Any], retry_of: str | None = None
    ) -> dict[str, Any] | None:
        return await create_refresh(self.client, self.writes, name, plan, node, spec, retry_of)

    async def post_event(self, body: dict[str, Any]) -> None:
        await self.events.post(body)
