"""What ``watch`` knows of the watched RefreshPlan or HostRefresh, and how list and watch updates change
it (pure: the informer threads in ``informer.py`` bring the updates; ``watch.py`` shows the result).

A view is the watched object and, for a plan, its HostRefreshes (those labelled with its name). A
``Listed`` update (the first list, or the re-list after the watch's resourceVersion expired: 410 Gone)
replaces what one stream shows; a ``Changed`` update (one watch event) adds, replaces or removes one
object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from hostrefresh.api.names import PLAN_LABEL

Obj = dict[str, Any]
Kind = Literal["RefreshPlan", "HostRefresh"]
#: The stream of a plan's children (its own stream is named by its kind).
CHILDREN = "children"
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class Listed:
    """A whole list of one stream, at one resourceVersion."""

    stream: str
    items: tuple[Obj, ...]


@dataclass(frozen=True)
class Changed:
    """One watch event of one stream."""

    stream: str
    type: str
    obj: Obj


@dataclass(frozen=True)
class Broken:
    """A stream failed for good (refused, not a drop): the command ends with this error."""

    stream: str
    error: BaseException


Update = Listed | Changed | Broken


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


@dataclass(frozen=True)
class View:
    """The watched object (None once deleted) and, for a plan, its children by name."""

    kind: Kind
    name: str
    obj: Obj | None
    children: Mapping[str, Obj] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams the view is made of: its object's, and for a plan its children's."""
        return (self.kind, CHILDREN) if self.kind == "RefreshPlan" else (self.kind,)

    def child_list(self) -> list[Obj]:
        return [self.children[n] for n in sorted(self.children)]


def _own_child(view: View, obj: Mapping[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(PLAN_LABEL) == view.name


def apply(view: View, update: Update) -> View:
    """The view after ``update`` (a ``Broken`` one changes nothing: the caller ends the command)."""
    if isinstance(update, Broken):
        return view
    if update.stream == view.kind:
        if isinstance(update, Listed):
            found = [o for o in update.items if _name(o) == view.name]
            return replace(view, obj=found[0] if found else None)
        if _name(update.obj) != view.name:
            return view
        return replace(view, obj=None if update.type == "DELETED" else update.obj)
    if update.stream != CHILDREN or view.kind != "RefreshPlan":
        return view
    if isinstance(update, Listed):
        kids = {_name(o): o for o in update.items if _own_child(view, o)}
        return replace(view, children=MappingProxyType(kids))
    kids = dict(view.children)
    name = _name(update.obj)
    if update.type == "DELETED" or not _own_child(view, update.obj):
        kids.pop(name, None)
    else:
        kids[name] = update.obj
    return replace(view, children=MappingProxyType(kids))
