"""API objects to the views the decisions read, and the operator's writes back to objects (pure).

Kept apart from ``kube`` (which talks to the API server) so the decision side (``snapshot``, the
indexes, the reconcilers' bookkeeping) imports no API client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hostrefresh.api import API_VERSION, HostRefresh, HostRefreshStatus, Phase
from hostrefresh.api.names import (
    CAPABILITIES_ANNOTATION,
    NODE_ANNOTATION,
    NODE_LABEL,
    RETRY_ANNOTATION,
    label_value,
)
from hostrefresh.kube.names import OPERATOR, agent_lease_name
from hostrefresh.operator.views import AgentView, NodeView, Taint
from hostrefresh.operator.waves import OwnedRefresh

EVENT_COMPONENT = OPERATOR
MAX_EVENT_MESSAGE = 1024


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
    capabilities = _capabilities((body.get("metadata") or {}).get("annotations") or {})
    l0 = capabilities.get("l0")
    return AgentView(
        renewed_at=parse_time(spec.get("renewTime")),
        lease_seconds=int(spec.get("leaseDurationSeconds") or 30),
        seen_at=seen_at,
        l0=l0 if isinstance(l0, str) else None,
        l0_backend=str(capabilities.get("l0Backend") or ""),
    )


def _capabilities(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The agent's report of what its node can do (empty when absent or unreadable: nothing is assumed)."""
    try:
        value = json.loads(annotations.get(CAPABILITIES_ANNOTATION) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def owned_refresh(
    name: str, spec: Mapping[str, Any], status: Mapping[str, Any], annotations: Mapping[str, str] | None = None
) -> OwnedRefresh:
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
        retried=RETRY_ANNOTATION in (annotations or {}),
    )


def operator_status_json(status: HostRefreshStatus) -> dict[str, Any]:
    """The operator-owned part of a HostRefresh status (never ``agent``, the agent's own)."""
    out = status.to_json()
    out.pop("agent", None)
    return out


def node_ref(node: str) -> dict[str, Any]:
    """A Node as ``event_body`` takes it. Its uid is its name, as the kubelet's own Events of a node
    have it, which is what ``kubectl describe node`` looks for."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "uid": node}}


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
        "apiVersion": obj.get("apiVersion") or API_VERSION,
        "kind": obj.get("kind") or HostRefresh.KIND,
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
