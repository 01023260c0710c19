"""Events about HostRefreshes and RefreshPlans show where users look: `kubectl describe` and
`kubectl events --for` of the real kubectl, against the real control plane.

Both objects are cluster-scoped: describe looks for Events whose involvedObject has no namespace,
and `kubectl events` looks in the current namespace (default). kopf's own poster puts a namespace
into involvedObject, which describe then never shows (checked below, so the reason stays known).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lightkube import AsyncClient

from hostrefresh.cli.fetch import events, get_plan, get_refresh
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.kube.client import load_config, sync_client
from hostrefresh.operator import kube, objects
from tests.cli.fleet import make_plan, make_refresh

pytestmark = pytest.mark.integration


def _post(cp: ControlPlane, body: dict[str, Any]) -> None:
    async def post() -> None:
        client = AsyncClient(config=load_config(cp.kubeconfig))
        try:
            await kube.post_event(client, body)
        finally:
            await client.close()

    asyncio.run(post())


def test_refresh_events_show_in_describe_and_events_for(crds: ControlPlane) -> None:
    name = f"ev-{uuid.uuid4().hex[:6]}"
    client = sync_client(crds.kubeconfig)
    make_refresh(client, name, f"{name}-node", None, {})
    obj = get_refresh(client, name)
    assert obj is not None
    now = datetime.now(UTC)
    _post(
        crds,
        objects.event_body(obj, "Normal", "PhasePreflight", "Pending -> Preflight: start granted", "default", "t", now),
    )
    _post(
        crds,
        objects.event_body(
            obj,
            "Warning",
            "DeadlineExceeded",
            "phase Migrating exceeded its deadline",
            "default",
            "t",
            now + timedelta(microseconds=100),
        ),
    )
    later = now + timedelta(microseconds=300)
    _post(crds, objects.event_body(obj, "Normal", "PhaseMigrating", "the same second, later", "default", "t", later))
    described = crds.kubectl("describe", "hostrefresh", name).stdout
    assert "PhasePreflight" in described and "DeadlineExceeded" in described
    assert "phase Migrating exceeded its deadline" in described
    listed = crds.kubectl("events", "--for", f"hostrefresh/{name}").stdout
    assert "PhasePreflight" in listed and "DeadlineExceeded" in listed
    # The plugin lists them in the order they were posted, to the microsecond.
    reasons = [e["reason"] for e in events(client, "HostRefresh", name)]
    assert reasons == ["PhasePreflight", "DeadlineExceeded", "PhaseMigrating"]
    # What kopf would have posted: involvedObject with a namespace. describe does not find it.
    hidden = objects.event_body(obj, "Normal", "KopfStyle", "namespaced reference", "default", "t", now)
    hidden["involvedObject"]["namespace"] = "default"
    _post(crds, hidden)
    assert "KopfStyle" not in crds.kubectl("describe", "hostrefresh", name).stdout


def test_plan_events_show_in_describe_and_events_for(crds: ControlPlane) -> None:
    name = f"evp-{uuid.uuid4().hex[:6]}"
    client = sync_client(crds.kubeconfig)
    make_plan(client, name, {})
    obj = get_plan(client, name)
    assert obj is not None
    body = objects.event_body(obj, "Warning", "FailureThresholdReached", "2 failed", "default", "t", datetime.now(UTC))
    assert "namespace" not in body["involvedObject"]
    _post(crds, body)
    assert "FailureThresholdReached" in crds.kubectl("describe", "refreshplan", name).stdout
    assert "FailureThresholdReached" in crds.kubectl("events", "--for", f"refreshplan/{name}").stdout


def test_long_messages_are_cut_to_what_events_accept() -> None:
    obj = {"apiVersion": "hostrefresh.io/v1alpha1", "kind": "HostRefresh", "metadata": {"name": "x", "uid": "u"}}
    body = objects.event_body(obj, "Warning", "StepFailed", "y" * 5000, "default", "t", datetime.now(UTC))
    assert len(body["message"]) == objects.MAX_EVENT_MESSAGE and body["message"].endswith("...")
    assert body["involvedObject"] == {
        "apiVersion": "hostrefresh.io/v1alpha1",
        "kind": "HostRefresh",
        "name": "x",
        "uid": "u",
    }


def test_node_events_show_in_describe_node_and_events_for_node(control_plane: ControlPlane) -> None:
    node = f"ev-node-{uuid.uuid4().hex[:6]}"
    register_node(control_plane, node)
    now = datetime.now(UTC)
    message = f"HostRefresh ev-{node} started: to 2.0 (scope Host)"
    _post(
        control_plane,
        objects.event_body(objects.node_ref(node), "Normal", "HostRefreshStarted", message, "default", "t", now),
    )
    described = control_plane.kubectl("describe", "node", node).stdout
    assert "HostRefreshStarted" in described and message in described, described[-1500:]
    listed = control_plane.kubectl("events", "--for", f"node/{node}").stdout
    assert "HostRefreshStarted" in listed, listed
