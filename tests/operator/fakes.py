"""A fake ``Writer`` and builders of objects and caches, for single reconcile passes as unit tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hostrefresh.api.names import CLAIM_ANNOTATION, FINALIZER, PLAN_LABEL, REFRESH_TAINT_KEY
from hostrefresh.operator.config import OperatorConfig
from hostrefresh.operator.nodemarks import NodeMarkPatch
from hostrefresh.operator.state import Caches, OperatorState
from hostrefresh.operator.views import AgentView, NodeView, PeerView, Taint
from hostrefresh.operator.waves import OwnedRefresh

CHECKSUM = "sha256:0f5e3b0c4a7d2e1b9c8f6a5d4e3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c"
TARGET = {"version": "2.0", "kernel": "/k", "checksum": CHECKSUM}


class ApiFailureError(RuntimeError):
    """What a write raises when the API server fails it (not a conflict: that is a False return)."""


@dataclass
class FakeWriter:
    """Records every write; answers as the API server would in the case at hand."""

    conflict: bool = False  # status patches fail with 409
    holder: str | None = None  # claim_node finds the node held by this refresh
    in_flight: int = 0
    fail_marks: int = 0  # the first so many node-mark patches raise (an API error)
    fail_create: frozenset[str] = frozenset()  # creating a child for these nodes raises
    during_status: Callable[[], None] | None = None  # runs while a status patch is in flight
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    retries_of: dict[str, str | None] = field(default_factory=dict)  # created child -> the one it retries
    events: list[dict[str, Any]] = field(default_factory=list)  # every Event body posted

    def kinds(self) -> list[str]:
        return [c[0] for c in self.calls]

    async def patch_refresh_status(self, name: str, resource_version: str, status: dict[str, Any]) -> bool:
        self.calls.append(("refresh_status", name, status))
        if self.during_status is not None:
            self.during_status()
        return not self.conflict

    async def patch_plan_status(self, name: str, resource_version: str, status: dict[str, Any]) -> bool:
        self.calls.append(("plan_status", name, status))
        return not self.conflict

    async def claim_node(self, node: str, refresh: str, known: NodeView | None) -> str | None:
        self.calls.append(("claim", node, refresh))
        return self.holder or refresh

    async def patch_node_marks(
        self, node: str, compute: Callable[[NodeView], NodeMarkPatch], known: NodeView | None
    ) -> NodeMarkPatch | None:
        patch = compute(known or NodeView(node))
        self.calls.append(("marks", node, patch))
        if self.fail_marks > 0:
            self.fail_marks -= 1
            raise ApiFailureError(f"patch node {node}: 500")
        return patch

    async def create_refresh(
        self, name: str, plan: Mapping[str, Any], node: str, spec: dict[str, Any], retry_of: str | None = None
    ) -> dict[str, Any] | None:
        self.calls.append(("create", name, node))
        self.retries_of[name] = retry_of
        if node in self.fail_create:
            raise ApiFailureError(f"create {name}: 500")
        meta = {
            "name": name,
            "resourceVersion": "1",
            "generation": 1,
            "finalizers": [FINALIZER],
            "labels": {PLAN_LABEL: plan["metadata"]["name"]},
        }
        return {"metadata": meta, "spec": spec}

    async def post_event(self, body: dict[str, Any]) -> None:
        self.calls.append(("event", body["reason"]))
        self.events.append(body)


def refresh_body(
    name: str = "hr-a", node: str = "node-a", status: dict[str, Any] | None = None, *, finalizer: bool = True
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "resourceVersion": "7", "generation": 1, "uid": f"uid-{name}"}
    if finalizer:
        meta["finalizers"] = [FINALIZER]
    return {"metadata": meta, "spec": {"nodeName": node, "target": TARGET}, "status": status or {}}


def plan_body(name: str = "fleet", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    meta = {"name": name, "resourceVersion": "3", "generation": 1, "uid": f"uid-{name}"}
    body_spec = {"nodeSelector": {"matchLabels": {"fleet": "a"}}, "target": TARGET, **spec}
    return {"metadata": meta, "spec": body_spec, "status": status or {}}


def caches(
    now: datetime,
    nodes: tuple[str, ...] = ("node-a",),
    *,
    marked_by: str | None = None,
    peers: Mapping[str, list[PeerView]] | None = None,
    children: Mapping[str, list[OwnedRefresh]] | None = None,
    labels: Mapping[str, str | None] | None = None,
    annotations: Mapping[str, str | None] | None = None,
) -> Caches:
    """Ready nodes labelled ``fleet=a``, each with an agent heard from a second ago; ``labels`` and
    ``annotations`` more (as a merge patch wrote them: a None value is no label)."""
    agent = AgentView(renewed_at=now - timedelta(seconds=1), seen_at=now - timedelta(seconds=1), lease_seconds=30)
    marks = {}
    taints: tuple[Taint, ...] = ()
    if marked_by is not None:  # the node carries that refresh's taint, marker and claim
        marks = {REFRESH_TAINT_KEY: marked_by, CLAIM_ANNOTATION: marked_by}
        taints = (Taint(REFRESH_TAINT_KEY, "NoSchedule", marked_by),)
    more = {k: v for k, v in (annotations or {}).items() if v is not None}
    tags = {"fleet": "a", **{k: v for k, v in (labels or {}).items() if v is not None}}
    view = {
        n: NodeView(n, labels=tags, annotations={**marks, **more}, taints=taints, resource_version="1") for n in nodes
    }
    return Caches(
        nodes={n: [view[n]] for n in nodes},
        agents={n: [agent] for n in nodes},
        refreshes_by_node=dict(peers or {}),
        children_by_plan=dict(children or {}),
        vmis_by_node={},
    )


def operator_state(writer: FakeWriter, **config: Any) -> OperatorState:
    return OperatorState(config=OperatorConfig(**config), writer=writer)
