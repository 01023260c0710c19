"""Everything the operator remembers between passes, in one typed object (kopf's memo holds only it).

Nothing here is the truth: the truth is in the API objects, and a new leader starts with an empty
state. What is kept is what saves writes or time (each entry says which) and what the watch has
not shown yet (our own writes). ``forget_refresh`` and ``forget_plan`` are the one way to drop an
object, so nothing of a deleted object stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from hostrefresh.kube.link import ApiLink
from hostrefresh.operator.config import OperatorConfig
from hostrefresh.operator.gates import GateReader, NoPrometheus
from hostrefresh.operator.nodemarks import NodeMarkLog
from hostrefresh.operator.pacing import StartPacer
from hostrefresh.operator.views import AgentView, NodeView, PeerView
from hostrefresh.operator.waves import OwnedRefresh
from hostrefresh.operator.workqueue import WorkQueue
from hostrefresh.operator.writer import Writer

log = logging.getLogger("hostrefresh.operator")

#: A HostRefresh seen without any status counts towards the backlog for this long at most.
UNVISITED_SECONDS = 10.0


@dataclass
class Caches:
    """kopf's indexes, kept up to date from its watches (a reconcile reads no API objects)."""

    nodes: Mapping[str, Collection[NodeView]]
    agents: Mapping[str, Collection[AgentView]]
    refreshes_by_node: Mapping[str, Collection[PeerView]]
    children_by_plan: Mapping[str, Collection[OwnedRefresh]]
    vmis_by_node: Mapping[str, Collection[tuple[str, bool]]]


@dataclass
class OperatorState:
    """The leader's working memory; see the module docstring."""

    config: OperatorConfig
    writer: Writer
    #: How plans read their Prometheus health gate (none configured: every such gate is closed).
    gates: GateReader = field(default_factory=NoPrometheus)
    #: Whether the API server answers this process, and when it last came back (silence verdicts).
    link: ApiLink = field(default_factory=ApiLink)
    #: Names of HostRefreshes / RefreshPlans to reconcile, and when.
    refreshes: WorkQueue[str] = field(default_factory=lambda: WorkQueue("hostrefresh"))
    plans: WorkQueue[str] = field(default_factory=lambda: WorkQueue("refreshplan"))
    #: The newest version of each object, from its last watch event or our own create.
    latest_refresh: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    latest_plan: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    caches: Caches | None = None  # bound at the first event (kopf hands indexes to handlers only)
    pacer: StartPacer = field(init=False)
    #: Node mark patches sent and not yet seen in the watch (not sent again meanwhile: saves 409s).
    node_marks_sent: NodeMarkLog = field(default_factory=NodeMarkLog)
    #: Whether a deleted refresh may lose its finalizer (set by every pass; read by the delete handler).
    released: dict[str, bool] = field(default_factory=dict)
    #: Delete handlers waiting for a pass to release their refresh.
    release_waiters: dict[str, asyncio.Event] = field(default_factory=dict)
    #: When a HostRefresh without status was first seen (for the backlog, see ``backlog``).
    unvisited: dict[str, float] = field(default_factory=dict)
    #: Per plan: children created or moved by us that the watch does not show yet (see waves.merge_ahead).
    plan_ahead: dict[str, dict[str, OwnedRefresh]] = field(default_factory=dict)
    #: Per plan: whether it is paused (its children's admission reads it).
    plan_paused: dict[str, bool] = field(default_factory=dict)
    #: Per plan: when its status was last written (counter-only changes wait a plan interval).
    plan_written: dict[str, float] = field(default_factory=dict)
    #: Per node: its agent's Lease as last indexed, with when its renewal was first seen (a relist of
    #: the Lease watch is no renewal: see AgentView.seen). One small entry per node that has an agent.
    heartbeats: dict[str, AgentView] = field(default_factory=dict)
    active_counted_at: float = -math.inf
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pacer = StartPacer(self.config.max_starts_per_second)

    def forget_refresh(self, name: str, plan: str | None) -> None:
        """A HostRefresh is gone: drop all that is kept about it."""
        self.refreshes.forget(name)
        self.latest_refresh.pop(name, None)
        self.pacer.forget(name)
        self.node_marks_sent.forget(name)
        self.released.pop(name, None)
        waiter = self.release_waiters.pop(name, None)
        if waiter is not None:
            waiter.set()
        self.unvisited.pop(name, None)
        if plan is not None:
            self.plan_ahead.get(plan, {}).pop(name, None)

    def forget_plan(self, name: str) -> None:
        """A RefreshPlan is gone: drop all that is kept about it."""
        self.plans.forget(name)
        self.latest_plan.pop(name, None)
        self.plan_ahead.pop(name, None)
        self.plan_paused.pop(name, None)
        self.plan_written.pop(name, None)

    def set_released(self, name: str, released: bool) -> None:
        """Record a pass's verdict on deletion, and wake a delete handler waiting for it."""
        self.released[name] = released
        if released and (waiter := self.release_waiters.get(name)) is not None:
            waiter.set()

    async def wait_released(self, name: str, timeout: float) -> bool:
        """Whether a pass released refresh ``name`` within ``timeout`` seconds (queue one if needed)."""
        if self.released.get(name):
            return True
        waiter = self.release_waiters.setdefault(name, asyncio.Event())
        self.refreshes.add(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), timeout)
        if self.release_waiters.get(name) is waiter and not waiter.is_set():
            del self.release_waiters[name]
        return bool(self.released.get(name))

    def backlog(self) -> int:
        """Work the API server has still to take from us: our unanswered writes, and new HostRefresh
        objects not yet given a status (a burst of them is a burst of writes: theirs, kopf's, ours)."""
        fresh = time.monotonic() - UNVISITED_SECONDS
        return self.writer.in_flight + sum(1 for seen in self.unvisited.values() if seen > fresh)

    def in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` beside the caller (kept referenced until done; its failure is logged)."""
        task = asyncio.create_task(work)
        self.background.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            self.background.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("background write failed", exc_info=task.exception())

        task.add_done_callback(done)
