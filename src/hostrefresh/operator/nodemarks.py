"""Taints and annotations the operator puts on a refreshing node, and takes off again.

The operator records exactly what it added (in the HostRefresh status) and removes only that: a
taint or annotation someone else set before, with the same key, is left alone, and so is a cordon.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hostrefresh.api import RefreshScope
from hostrefresh.api.names import CLAIM_ANNOTATION, REFRESH_TAINT_KEY, label_value
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

    @property
    def empty(self) -> bool:
        return self.taints is None and not self.annotations


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
