"""Reads and writes against the API server, with its errors turned into ones that say what to do."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx2
from lightkube import Client
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Event

from hostrefresh.api.names import GROUP, NODE_LABEL, PLAN_LABEL
from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.selector import Requirement
from hostrefresh.kube.resources import HostRefreshResource, RefreshPlanResource

Obj = dict[str, Any]
T = TypeVar("T")
NOT_FOUND, FORBIDDEN, UNAUTHORIZED = 404, 403, 401
LIST_HINT = "`kubectl hostrefresh get` lists the plans and refreshes"


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Translate transport and API errors of ``what`` into a CliError with a hint and an exit code."""
    try:
        yield
    except httpx2.TransportError as exc:
        raise CliError(
            f"cannot reach the API server ({exc.__class__.__name__}: {exc})",
            "check that the cluster runs and that --kubeconfig/--context point at it (kubectl cluster-info)",
            Exit.NO_CLUSTER,
        ) from None
    except ApiError as exc:
        code = exc.status.code
        details = exc.status.details
        if code == NOT_FOUND and (details is None or not details.name):
            raise CliError(
                f"the cluster does not serve {GROUP} (while {what})",
                "install the CRDs: kubectl apply -f crds/ (or install the Helm chart)",
                Exit.NO_CRDS,
            ) from None
        if code in (FORBIDDEN, UNAUTHORIZED):
            raise CliError(
                f"the API server refused {what}: {exc.status.message}",
                "check your credentials and RBAC (kubectl auth can-i --list)",
                Exit.FAILED,
            ) from None
        raise


def _dict(obj: Any) -> Obj:
    out: Obj = obj.to_dict()
    return out


def _labels(pairs: list[Any]) -> Any:
    """Requirements as lightkube takes them: a list of pairs, so that a key may come twice (a!=x,a!=y).
    (Its selector builder takes such a list; its signature says only a dict.)"""
    return pairs or None


def list_plans(client: Client, selector: Sequence[Requirement] = ()) -> list[Obj]:
    """Every RefreshPlan (those the label ``selector`` selects), by name."""
    with api_errors("listing RefreshPlans"):
        items = [_dict(o) for o in client.list(RefreshPlanResource, labels=_labels(list(selector)))]
    return sorted(items, key=lambda o: o["metadata"]["name"])


def list_refreshes(client: Client, plan: str | None = None, selector: Sequence[Requirement] = ()) -> list[Obj]:
    """Every HostRefresh (of ``plan``; those the label ``selector`` selects), by name."""
    labels: list[Any] = [(PLAN_LABEL, plan)] if plan else []
    labels += selector
    with api_errors("listing HostRefreshes"):
        items = [_dict(o) for o in client.list(HostRefreshResource, labels=_labels(labels))]
    return sorted(items, key=lambda o: o["metadata"]["name"])


def _get(client: Client, resource: Any, kind: str, name: str) -> Obj | None:
    """One object, or None when it does not exist (a 404 about that very object, not a missing CRD)."""
    with api_errors(f"reading {kind} {name}"):
        try:
            return _dict(client.get(resource, name))
        except ApiError as exc:
            if exc.status.code == NOT_FOUND and exc.status.details is not None and exc.status.details.name:
                return None
            raise


def get_plan(client: Client, name: str) -> Obj | None:
    return _get(client, RefreshPlanResource, "RefreshPlan", name)


def get_refresh(client: Client, name: str) -> Obj | None:
    return _get(client, HostRefreshResource, "HostRefresh", name)


def refresh_of_node(client: Client, node: str) -> Obj | None:
    """The node's newest HostRefresh (plans label theirs; standalone ones are found by spec.nodeName)."""
    with api_errors(f"listing HostRefreshes of node {node}"):
        items = [_dict(o) for o in client.list(HostRefreshResource, labels={NODE_LABEL: node})]
    if not items:
        items = [o for o in list_refreshes(client) if (o.get("spec") or {}).get("nodeName") == node]
    if not items:
        return None
    newest: Obj = max(items, key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]))
    return newest


@dataclass(frozen=True)
class Target:
    """What a NAME argument designates."""

    kind: Literal["RefreshPlan", "HostRefresh"]
    obj: Obj

    @property
    def name(self) -> str:
        name: str = self.obj["metadata"]["name"]
        return name


def resolve(client: Client, name: str, want: str | None = None) -> Target:
    """NAME is a RefreshPlan, a HostRefresh, or a node (its newest HostRefresh), tried in that order.

    ``want`` limits the kinds: "plan" or "refresh" (a HostRefresh or a node).
    """
    if want in (None, "plan"):
        plan = get_plan(client, name)
        if plan is not None:
            return Target("RefreshPlan", plan)
    if want in (None, "refresh"):
        refresh = get_refresh(client, name) or refresh_of_node(client, name)
        if refresh is not None:
            return Target("HostRefresh", refresh)
    kinds = {"plan": "RefreshPlan", "refresh": "HostRefresh or node with a HostRefresh"}.get(
        want or "", "RefreshPlan, HostRefresh or node with a HostRefresh"
    )
    raise CliError(f"no {kinds} named {name!r}", LIST_HINT, Exit.NOT_FOUND)


def events(client: Client, kind: str, name: str, uid: str | None = None) -> list[Obj]:
    """core/v1 Events about one of our objects, in every namespace, oldest first."""
    fields: dict[str, Any] = {"involvedObject.kind": kind, "involvedObject.name": name}
    if uid:
        fields["involvedObject.uid"] = uid
    with api_errors(f"listing Events of {kind} {name}"):
        found = [_dict(e) for e in client.list(Event, namespace="*", fields=fields)]

    def when(e: Obj) -> str:
        # eventTime has microseconds (the operator sets it); the others only seconds.
        return str(e.get("eventTime") or e.get("lastTimestamp") or e["metadata"].get("creationTimestamp") or "")

    return sorted(found, key=when)


def write(what: str, action: Callable[[], T]) -> T:
    """Run a write, translating errors; a missing object is NOT_FOUND."""
    with api_errors(what):
        try:
            return action()
        except ApiError as exc:
            if exc.status.code == NOT_FOUND:
                raise CliError(f"{what}: {exc.status.message}", LIST_HINT, Exit.NOT_FOUND) from None
            raise CliError(f"the API server refused {what}: {exc.status.message}", "", Exit.FAILED) from None
