"""Taints and annotations the operator puts on a refreshing node, and takes off again; and the record
of what a node runs, which it writes when a refresh succeeds and leaves in place.

The operator records exactly what it added (in the HostRefresh status) and removes only that: a
taint or annotation someone else set before, with the same key, is left alone, and so is a cordon.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hostrefresh.api import RefreshScope
from hostrefresh.api.names import (
    CLAIM_ANNOTATION,
    HOST_REFRESHED_AT_ANNOTATION,
    HOST_REFRESHED_BY_ANNOTATION,
    HOST_VERSION_KEY,
    QEMU_REFRESHED_AT_ANNOTATION,
    QEMU_REFRESHED_BY_ANNOTATION,
    QEMU_VERSION_KEY,
    REFRESH_TAINT_KEY,
    label_value,
    version_label_value,
)
from hostrefresh.operator.views import NodeView, Taint

REFRESH_TAINT_EFFECT = "NoSchedule"
# CLAIM_ANNOTATION names the one refresh that may run on a node: set (guarded by the Node's
# resourceVersion) before a start is granted, removed with the other marks at the end. Two refreshes
# of one node (two standalone ones, a standalone one and a plan's child, children of two plans) can
# never both hold it, however stale the operator's view of the other refreshes is.
#: Annotation keys set while a node refreshes; other node actors (health checkers, remediation,
#: autoscalers) are configured to leave such nodes alone. Values are the HostRefresh name (the taint's
#: value is its label-value form: at most 63 characters, see ``label_value``).
DEFAULT_MARKER_ANNOTATIONS = (REFRESH_TAINT_KEY,)


@dataclass(frozen=True)
class NodeMarkPatch:
    """What to write to the Node, plus the updated record of what the operator owns there."""

    taints: list[dict[str, str]] | None = None  # the full new list, or None when unchanged
    annotations: dict[str, str | None] = field(default_factory=dict)  # merge patch; None deletes
    added_taints: list[str] = field(default_factory=list)
    added_annotations: list[str] = field(default_factory=list)
    labels: dict[str, str | None] = field(default_factory=dict)  # merge patch; None deletes

    @property
    def empty(self) -> bool:
        return self.taints is None and not self.annotations and not self.labels

    def merged(self, other: NodeMarkPatch) -> NodeMarkPatch:
        """One patch doing both (``other`` adds labels and annotations; taints and the record of what
        was added are this patch's unless it leaves taints alone)."""
        return NodeMarkPatch(
            taints=self.taints if self.taints is not None else other.taints,
            annotations={**self.annotations, **other.annotations},
            added_taints=self.added_taints,
            added_annotations=self.added_annotations,
            labels={**self.labels, **other.labels},
        )


def taints_node(scope: str) -> bool:
    """Whether a refresh of ``scope`` keeps new workloads off its node (the NoSchedule taint).

    A host refresh does: the old host gives CPUs and memory to the new one, and a VM started on the
    old host while it hands its VMs over would miss the handover and die with it at the retire. A
    VMM-only refresh does not: the host and its capacity stay, and a VM that starts on the old QEMU
    during the refresh is observed by the agent on its next pass and handed over like the others,
    so the node keeps taking work; it is only annotated (and claimed).
    """
    return scope != RefreshScope.VMM


def mark(
    node: NodeView,
    owner: str,
    added_taints: list[str],
    added_annotations: list[str],
    marker_annotations: tuple[str, ...] = DEFAULT_MARKER_ANNOTATIONS,
    *,
    taint: bool = True,
) -> NodeMarkPatch:
    """Taint (unless ``taint`` is False) and annotate ``node`` for refresh ``owner``; idempotent."""
    taints = list(node.taints)
    new_added_taints = list(added_taints)
    changed = False
    if taint and not any(t.key == REFRESH_TAINT_KEY for t in taints):
        taints.append(Taint(REFRESH_TAINT_KEY, REFRESH_TAINT_EFFECT, label_value(owner)))
        changed = True
        if REFRESH_TAINT_KEY not in new_added_taints:
            new_added_taints.append(REFRESH_TAINT_KEY)
    annotations: dict[str, str | None] = {}
    new_added_annotations = list(added_annotations)
    for key in marker_annotations:
        if key not in node.annotations:
            annotations[key] = owner
            if key not in new_added_annotations:
                new_added_annotations.append(key)
    return NodeMarkPatch(
        taints=[t.to_json() for t in taints] if changed else None,
        annotations=annotations,
        added_taints=new_added_taints,
        added_annotations=new_added_annotations,
    )


def unmark(node: NodeView | None, owner: str, added_taints: list[str], added_annotations: list[str]) -> NodeMarkPatch:
    """Remove what ``owner`` added (and only that); idempotent; a missing node needs nothing.

    The claim is removed whenever it names ``owner``, recorded or not: it is written before the status
    that records it, so an operator that crashed in between left a claim its status does not list.
    """
    if node is None:
        return NodeMarkPatch()
    keep = [t for t in node.taints if not (t.key in added_taints and t.value == label_value(owner))]
    keys = [*added_annotations, *([] if CLAIM_ANNOTATION in added_annotations else [CLAIM_ANNOTATION])]
    annotations: dict[str, str | None] = {key: None for key in keys if node.annotations.get(key) == owner}
    return NodeMarkPatch(
        taints=[t.to_json() for t in keep] if len(keep) != len(node.taints) else None,
        annotations=annotations,
    )


class NodeMarkLog:
    """When the operator last patched a node's marks for a refresh, so that it does not patch them again
    before the watch shows the result (within ``echo_seconds``; after that, a missing mark is
    someone else's doing and is restored)."""

    def __init__(self, echo_seconds: float = 5.0) -> None:
        self.echo_seconds = echo_seconds
        self._sent: dict[str, tuple[str, float]] = {}

    def due(self, refresh: str, what: str) -> bool:
        """Whether to patch now; records the patch when it is."""
        now = time.monotonic()
        last = self._sent.get(refresh)
        if last is not None and last[0] == what and now - last[1] < self.echo_seconds:
            return False
        self._sent[refresh] = (what, now)
        return True

    def forget(self, refresh: str) -> None:
        self._sent.pop(refresh, None)


@dataclass(frozen=True)
class NodeRecord:
    """What a node runs after refresh ``refresh`` of ``scope`` succeeded at ``at``: written onto the Node
    as a label (for selectors), and annotations with the exact version, the refresh and the time."""

    scope: str
    version: str
    refresh: str
    at: datetime

    @property
    def keys(self) -> tuple[str, str, str]:
        """The version key (label and annotation), and the annotations naming the refresh and its time."""
        if self.scope == RefreshScope.VMM:
            return QEMU_VERSION_KEY, QEMU_REFRESHED_BY_ANNOTATION, QEMU_REFRESHED_AT_ANNOTATION
        return HOST_VERSION_KEY, HOST_REFRESHED_BY_ANNOTATION, HOST_REFRESHED_AT_ANNOTATION

    @property
    def stamp(self) -> str:
        return self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _recorded_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None  # not ours to keep: the record is written anew
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def record(node: NodeView | None, rec: NodeRecord) -> NodeMarkPatch:
    """The labels and annotations saying ``node`` runs ``rec.version``; idempotent (empty once the node
    says so). Also empty when the node records another refresh that completed at the same time or later:
    an older refresh that succeeded, looked at again (an operator restart lists every HostRefresh),
    never takes a node's record back."""
    if node is None:
        return NodeMarkPatch()
    version_key, by_key, at_key = rec.keys
    other = node.annotations.get(by_key)
    recorded = _recorded_at(node.annotations.get(at_key))
    if other is not None and other != rec.refresh and recorded is not None and recorded >= rec.at:
        return NodeMarkPatch()
    want = {version_key: rec.version, by_key: rec.refresh, at_key: rec.stamp}
    annotations: dict[str, str | None] = {k: v for k, v in want.items() if node.annotations.get(k) != v}
    value = version_label_value(rec.version)
    labels: dict[str, str | None] = {} if node.labels.get(version_key) == value else {version_key: value}
    return NodeMarkPatch(annotations=annotations, labels=labels)
