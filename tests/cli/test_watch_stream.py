"""How watch updates change what ``watch`` shows (stream.apply), and how the informer lists and watches
(informer.follow against a fake client: a dropped watch is re-established from the last version, a 410
Gone re-lists, a refusal ends the stream)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.cli import informer
from hostrefresh.cli.stream import CHILDREN, Broken, Changed, Listed, Update, View, apply
from hostrefresh.cli.watch import changes
from hostrefresh.kube.errors import Backoff

Obj = dict[str, Any]
NOW = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def _plan(rv: str = "1", succeeded: int = 0) -> Obj:
    return {
        "kind": "RefreshPlan",
        "metadata": {"name": "p", "resourceVersion": rv, "generation": 1},
        "spec": {"maxUnavailable": 1},
        "status": {"observedGeneration": 1, "nodes": 2, "pending": 1, "succeeded": succeeded},
    }


def _child(name: str, phase: str, plan: str | None = "p", rv: str = "1") -> Obj:
    labels = {PLAN_LABEL: plan} if plan else {}
    return {
        "kind": "HostRefresh",
        "metadata": {"name": name, "labels": labels, "resourceVersion": rv},
        "spec": {"nodeName": f"node-{name}"},
        "status": {"phase": phase},
    }


def test_a_plan_view_follows_its_own_events_and_its_childrens() -> None:
    view = View("RefreshPlan", "p", _plan())
    view = apply(view, Listed(CHILDREN, (_child("a", "Migrating"), _child("x", "Migrating", plan="other"))))
    assert list(view.children) == ["a"]  # only the plan's own
    view = apply(view, Changed(CHILDREN, "MODIFIED", _child("a", "Retiring", rv="5")))
    view = apply(view, Changed(CHILDREN, "ADDED", _child("b", "Preflight")))
    assert [c["status"]["phase"] for c in view.child_list()] == ["Retiring", "Preflight"]
    view = apply(view, Changed("RefreshPlan", "MODIFIED", _plan(rv="9", succeeded=1)))
    assert view.obj is not None and view.obj["status"]["succeeded"] == 1
    view = apply(view, Changed(CHILDREN, "DELETED", _child("b", "Preflight")))
    view = apply(view, Changed(CHILDREN, "MODIFIED", _child("a", "Retiring", plan="other")))  # relabelled away
    assert view.child_list() == []
    view = apply(view, Changed("RefreshPlan", "DELETED", _plan()))
    assert view.obj is None


def test_a_relist_replaces_what_the_stream_showed() -> None:
    view = View("RefreshPlan", "p", _plan())
    view = apply(view, Listed(CHILDREN, (_child("a", "Migrating"), _child("b", "Migrating"))))
    # b was deleted while the watch was away (410): the re-list shows it gone.
    view = apply(view, Listed(CHILDREN, (_child("a", "Succeeded"),)))
    assert [c["metadata"]["name"] for c in view.child_list()] == ["a"]
    view = apply(view, Listed("RefreshPlan", ()))
    assert view.obj is None


def test_other_objects_and_broken_streams_change_nothing() -> None:
    view = View("HostRefresh", "a", _child("a", "Migrating", plan=None))
    same = apply(view, Changed("HostRefresh", "MODIFIED", _child("zzz", "Failed", plan=None)))
    assert same == view
    assert apply(view, Changed(CHILDREN, "ADDED", _child("b", "Preflight"))) == view
    assert apply(view, Broken("HostRefresh", RuntimeError("x"))) == view


def test_line_output_of_a_plan_carries_its_eta() -> None:
    view = apply(View("RefreshPlan", "p", _plan()), Listed(CHILDREN, (_child("a", "Migrating"),)))
    lines = dict(changes(view, NOW))
    assert lines["eta"] == "ETA unknown (no node completed yet)"
    assert lines["node-a"].startswith("Migrating")


# -- informer ----------------------------------------------------------------------------------------


class _Obj:
    """What lightkube yields: to_dict() and metadata.resourceVersion."""

    class _Meta:
        def __init__(self, rv: str) -> None:
            self.resourceVersion = rv

    def __init__(self, body: Obj) -> None:
        self.body = body
        self.metadata = self._Meta(body["metadata"]["resourceVersion"])

    def to_dict(self) -> Obj:
        return self.body


class _Listing(list[_Obj]):
    def __init__(self, items: list[_Obj], rv: str) -> None:
        super().__init__(items)
        self.resourceVersion = rv


def _gone() -> ApiError:
    return ApiError(status=Status(code=410, message="too old resource version", reason="Expired"))


class _FakeClient:
    """Scripted lists and watches; records the calls (what a LIST per second would show)."""

    def __init__(self, lists: list[_Listing], watches: list[list[Any]], stop: threading.Event) -> None:
        self.lists, self.watches, self.stop = lists, watches, stop
        self.calls: list[tuple[str, str | None]] = []

    def list(self, res: Any, *, labels: Any = None, fields: Any = None) -> _Listing:
        self.calls.append(("list", None))
        return self.lists.pop(0)

    def watch(
        self,
        res: Any,
        *,
        labels: Any = None,
        fields: Any = None,
        server_timeout: Any = None,
        resource_version: Any = None,
    ) -> Iterator[tuple[str, _Obj]]:
        self.calls.append(("watch", resource_version))
        if not self.watches:
            self.stop.set()
            return
        for step in self.watches.pop(0):
            if isinstance(step, BaseException):
                raise step
            yield step


def test_the_informer_lists_once_watches_from_there_reconnects_and_relists_on_gone() -> None:
    stop = threading.Event()
    a1, a2, a3 = (
        _Obj(_child("a", p, rv=rv)) for p, rv in (("Migrating", "10"), ("Retiring", "12"), ("Verifying", "30"))
    )
    client = _FakeClient(
        lists=[_Listing([a1], "11"), _Listing([a3], "30")],
        watches=[
            [("MODIFIED", a2), httpx2.RemoteProtocolError("peer closed connection")],  # the watch drops
            [_gone()],  # watching again from 12: too old
            [("MODIFIED", a3)],  # after the re-list
        ],
        stop=stop,
    )
    got: list[Update] = []
    informer.follow(client, object(), CHILDREN, got.append, stop, backoff=Backoff(0.01, 0.01))
    assert client.calls == [
        ("list", None),
        ("watch", "11"),
        ("watch", "12"),
        ("list", None),
        ("watch", "30"),
        ("watch", "30"),
    ]
    assert [type(u).__name__ for u in got] == ["Listed", "Changed", "Listed", "Changed"]
    assert isinstance(got[1], Changed) and got[1].obj["status"]["phase"] == "Retiring"


def test_a_gone_in_the_watch_stream_relists_too() -> None:
    stop = threading.Event()
    a1 = _Obj(_child("a", "Migrating", rv="10"))
    client = _FakeClient(lists=[_Listing([a1], "10"), _Listing([a1], "50")], watches=[[_gone()]], stop=stop)
    got: list[Update] = []
    informer.follow(client, object(), CHILDREN, got.append, stop, backoff=Backoff(0.01, 0.01))
    assert [c for c, _ in client.calls] == ["list", "watch", "list", "watch"]
    assert client.calls[-1] == ("watch", "50")


def test_a_refusal_ends_the_stream_with_its_error() -> None:
    stop = threading.Event()
    forbidden = ApiError(status=Status(code=403, message="forbidden"))
    client = _FakeClient(lists=[_Listing([], "1")], watches=[[forbidden]], stop=stop)
    got: list[Update] = []
    informer.follow(client, object(), CHILDREN, got.append, stop, backoff=Backoff(0.01, 0.01))
    assert isinstance(got[-1], Broken) and got[-1].error is forbidden
    assert not stop.is_set()


@pytest.mark.parametrize("code", [429, 500, 503])
def test_busy_api_servers_are_waited_for(code: int) -> None:
    stop = threading.Event()
    client = _FakeClient(
        lists=[_Listing([], "1")], watches=[[ApiError(status=Status(code=code, message="busy"))]], stop=stop
    )
    got: list[Update] = []
    informer.follow(client, object(), CHILDREN, got.append, stop, backoff=Backoff(0.01, 0.01))
    assert [c for c, _ in client.calls] == ["list", "watch", "watch"]  # re-established, not ended
    assert not any(isinstance(u, Broken) for u in got)
