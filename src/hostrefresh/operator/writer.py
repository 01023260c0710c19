"""The writer seam: every API write the operator makes goes through one ``Writer``.

Why: a reconcile pass is then a function of (object, caches, state) whose only effects are calls on
the writer, so single passes are table-driven unit tests with a fake writer (tests/operator/fakes.py),
and the real one (``kube.KubeWriter``) is the only code that talks to the API server to change things.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from hostrefresh.operator.nodemarks import NodeMarkPatch
from hostrefresh.operator.views import NodeView


class Writer(Protocol):
    """What the operator writes; each write that depends on a read is guarded by a resourceVersion."""

    @property
    def in_flight(self) -> int:
        """Writes sent and not answered yet (how far the API server is behind on ours)."""
        ...

    async def patch_refresh_status(self, name: str, resource_version: str, status: dict[str, Any]) -> bool:
        """The operator's own HostRefresh status fields; False when the object moved on or is gone."""
        ...

    async def patch_plan_status(self, name: str, resource_version: str, status: dict[str, Any]) -> bool:
        """A RefreshPlan's status; False when the object moved on or is gone."""
        ...

    async def claim_node(self, node: str, refresh: str, known: NodeView | None) -> str | None:
        """Make ``refresh`` the one refresh of ``node``; the holder afterwards (None: no such node)."""
        ...

    async def patch_node_marks(
        self, node: str, compute: Callable[[NodeView], NodeMarkPatch], known: NodeView | None
    ) -> NodeMarkPatch | None:
        """Write the taints, annotations and labels ``compute`` derives from the node; None when it does not
        exist."""
        ...

    async def create_refresh(
        self, name: str, plan: Mapping[str, Any], node: str, spec: dict[str, Any], retry_of: str | None = None
    ) -> dict[str, Any] | None:
        """Create a plan's child (``retry_of``: the failed child it retries); the object as created, None
        if it exists already."""
        ...

    async def post_event(self, body: dict[str, Any]) -> None:
        """Create an Event (never raises: Events are auxiliary)."""
        ...
