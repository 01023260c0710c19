"""Events about HostRefreshes and RefreshPlans show where users look: `kubectl describe` and
`kubectl events --for` of the real kubectl, against the real control plane.

Both objects are cluster-scoped: describe looks for Events whose involvedObject has no namespace,
and `kubectl events` looks in the current namespace (default). kopf's own poster puts a namespace
into involvedObject, which describe then never shows (checked below, so the reason stays known).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Event

from hostrefresh.cli.fetch import events, get_plan, get_refresh
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.kube.client import load_config, sync_client
from hostrefresh.operator import kube, objects
from hostrefresh.operator.eventseries import SERIES_WINDOW
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


def _record(cp: ControlPlane, recorder_bodies: list[list[dict[str, Any]]]) -> None:
    """Each inner list is posted through one EventRecorder (one operator process), in order."""

    async def post() -> None:
        client = AsyncClient(config=load_config(cp.kubeconfig))
        try:
            for bodies in recorder_bodies:
                recorder = kube.EventRecorder(client)
                for body in bodies:
                    await recorder.post(body)
        finally:
            await client.close()

    asyncio.run(post())


def _ours(client: Any, name: str, uid: str) -> list[dict[str, Any]]:
    return [e for e in events(client, "HostRefresh", name, uid) if e["reason"] == "DeadlineExceeded"]


def test_a_repeated_event_is_one_event_with_a_count(crds: ControlPlane) -> None:
    name = f"evr-{uuid.uuid4().hex[:6]}"
    client = sync_client(crds.kubeconfig)
    make_refresh(client, name, f"{name}-node", None, {})
    obj = get_refresh(client, name)
    assert obj is not None
    uid = obj["metadata"]["uid"]
    now = datetime.now(UTC)
    message = "phase Migrating exceeded its deadline"

    def body(at: datetime, rv: str, msg: str = message) -> dict[str, Any]:
        moved = {**obj, "metadata": {**obj["metadata"], "resourceVersion": rv}}
        return objects.event_body(moved, "Warning", "DeadlineExceeded", msg, "default", "t", at)

    # Three repeats (the object moving on between them), and one other message between them.
    _record(
        crds,
        [
            [
                body(now, "1"),
                body(now + timedelta(seconds=2), "2"),
                body(now + timedelta(seconds=3), "3", "phase Retiring exceeded its deadline"),
                body(now + timedelta(seconds=4), "4"),
            ]
        ],
    )
    found = _ours(client, name, uid)
    by_message = {e["message"]: e for e in found}
    assert len(found) == 2, found
    repeated = by_message[message]
    assert repeated["count"] == 3
    assert repeated["series"]["count"] == 3
    assert repeated["series"]["lastObservedTime"].startswith(f"{now + timedelta(seconds=4):%Y-%m-%dT%H:%M:%S}")
    assert repeated["lastTimestamp"] > repeated["firstTimestamp"]
    assert by_message["phase Retiring exceeded its deadline"]["count"] == 1
    assert "series" not in by_message["phase Retiring exceeded its deadline"] or not by_message[
        "phase Retiring exceeded its deadline"
    ].get("series")
    # Both kubectl readers show the count: describe reads count, `kubectl events` the series.
    assert "x3 over" in crds.kubectl("describe", "hostrefresh", name).stdout
    assert "x3 over" in crds.kubectl("events", "--for", f"hostrefresh/{name}").stdout
    plugin = subprocess.run(
        [sys.executable, "-m", "hostrefresh.cli", "describe", name, "-o", "json", "--kubeconfig", str(crds.kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    shown = [e for e in json.loads(plugin.stdout)["events"] if e["reason"] == "DeadlineExceeded"]
    assert sorted(e["count"] for e in shown) == [1, 3], plugin.stdout

    # A restarted operator (a new recorder, nothing remembered) posts a new Event, without failing;
    # its own repeats count on that one.
    later = now + timedelta(seconds=10)
    _record(crds, [[body(later, "5"), body(later + timedelta(seconds=1), "6")]])
    counts = sorted(e["count"] for e in _ours(client, name, uid) if e["message"] == message)
    assert counts == [2, 3]

    # The Event a repeat would update is gone (Events expire): the repeat posts a new one, no failure.
    async def delete_then_repeat() -> None:
        ac = AsyncClient(config=load_config(crds.kubeconfig))
        try:
            recorder = kube.EventRecorder(ac)
            await recorder.post(body(later + timedelta(seconds=20), "7", "a third message"))
            third = [e for e in _ours(client, name, uid) if e["message"] == "a third message"]
            assert len(third) == 1
            await ac.delete(Event, third[0]["metadata"]["name"], namespace="default")
            await recorder.post(body(later + timedelta(seconds=21), "8", "a third message"))
            await recorder.post(body(later + timedelta(seconds=22), "9", "a third message"))
        finally:
            await ac.close()

    asyncio.run(delete_then_repeat())
    third = [e for e in _ours(client, name, uid) if e["message"] == "a third message"]
    assert [e["count"] for e in third] == [2], third


def test_a_repeat_after_the_window_is_a_new_event(crds: ControlPlane) -> None:
    name = f"evw-{uuid.uuid4().hex[:6]}"
    client = sync_client(crds.kubeconfig)
    make_refresh(client, name, f"{name}-node", None, {})
    obj = get_refresh(client, name)
    assert obj is not None
    now = datetime.now(UTC) - timedelta(minutes=20)
    late = now + SERIES_WINDOW + timedelta(seconds=1)
    bodies = [objects.event_body(obj, "Warning", "DeadlineExceeded", "late", "default", "t", at) for at in (now, late)]
    _record(crds, [bodies])
    assert [e["count"] for e in _ours(client, name, obj["metadata"]["uid"])] == [1, 1]
