"""Hosts node agents in one process: one watch, one heartbeat loop, one client for all of them.

A DaemonSet pod hosts one node (its own, watched with a ``spec.nodeName`` field selector); the fleet
simulator hosts hundreds. The code path is the same, only the number of ``NodeAgent`` differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lightkube import AsyncClient

from hostrefresh.api.names import CAPABILITIES_ANNOTATION, NODE_ANNOTATION, NODE_LABEL, label_value
from hostrefresh.kube.errors import status_code
from hostrefresh.kube.leases import Heartbeats
from hostrefresh.kube.names import AGENT_COMPONENT_LABEL, agent_lease_name
from hostrefresh.kube.resources import HostRefreshResource
from hostrefresh.nodeagent.agent import REPORT_RUNNING_AFTER, NodeAgent, SwitchoverError
from hostrefresh.nodeagent.capabilities import annotation_value, capabilities
from hostrefresh.nodeagent.report import Reporter
from hostrefresh.nodeagent.runtime import NodeRuntime

log = logging.getLogger("hostrefresh.agent")
BAD_REQUEST = 400
#: Upper bound of threads for blocking calls, however many simulated nodes one process hosts.
MAX_BLOCKING_THREADS = 256
#: A new host's agent asks the L0 this often whether its host drives the node yet (after the retire).
PRIMARY_CHECK_S = 0.1
#: ... and serves the handover channel this often until then.
SERVE_INTERVAL_S = 0.01


class AgentHost:
    """Runs the agents of ``runtimes`` against one API server."""

    def __init__(
        self,
        client: AsyncClient,
        runtimes: list[NodeRuntime],
        *,
        namespace: str,
        identity: str,
        lease_seconds: int = 30,
        retry_seconds: float = 1.0,
        report_running_after: float = REPORT_RUNNING_AFTER,
        make_runtime: Callable[[NodeRuntime], NodeRuntime] | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.retry_seconds = retry_seconds
        self.report_running_after = report_running_after
        # A report the API server did not answer is sent again soon after it is back.
        self.reporter = Reporter(client, max_retry_delay=min(5.0, 4 * retry_seconds))
        self.runtimes = {rt.node: rt for rt in runtimes}
        self.generations = dict.fromkeys(self.runtimes, 0)
        self.agents = {node: self._new_agent(rt) for node, rt in self.runtimes.items()}
        self.make_runtime = make_runtime or (lambda rt: rt)
        self.healthy = asyncio.Event()
        # Which hosted agents drive their node (write its status, renew its heartbeat). An agent in
        # one of two hosts of a node waits for its turn (see NodeRuntime.primary); others always do.
        self.driving = {node: rt.l1_id is None for node, rt in self.runtimes.items()}
        #: Per node: the runtime its capabilities were asked of, and the report (see _capabilities).
        self._reported: dict[str, tuple[NodeRuntime, str]] = {}

    def _new_agent(self, rt: NodeRuntime) -> NodeAgent:
        if rt.l1_id is not None:
            agent_id = f"{self.identity}/{rt.node}/l1-{rt.l1_id}"
        else:
            agent_id = f"{self.identity}/{rt.node}/l1-gen{self.generations[rt.node]}"
        return NodeAgent(rt, self.reporter, agent_id, self.retry_seconds, self.report_running_after)

    async def run(self) -> None:
        """Heartbeats, the watch and every agent, until cancelled."""
        # Blocking L0 calls and sysfs reads run in the loop's default executor; asyncio sizes it by
        # CPU count, so a slow L0 call on one hosted node would queue every other node's behind it.
        workers = min(len(self.runtimes), MAX_BLOCKING_THREADS) + 4
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers, thread_name_prefix="blocking"))
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._heartbeats())
            tasks.create_task(self._watch())
            for node in self.agents:
                tasks.create_task(self._run_agent(node))

    async def _run_agent(self, node: str) -> None:
        while True:
            agent = self.agents[node]
            rt = self.runtimes[node]
            if rt.l1_id is not None and not self.driving[node]:
                await self._serve_until_driving(rt)
                # The old host's agent wrote everything it knew before the retire; the watch may not
                # have delivered its last write yet, and a report built on an older view would erase
                # it (a merge patch replaces lists): drive from what the API server holds now.
                await self._reread(node, agent)
                self.driving[node] = True
                log.info("node %s: the agent of L1 %d drives the node now", node, rt.l1_id)
            try:
                await agent.run()
            except asyncio.CancelledError:
                raise
            except SwitchoverError:
                if rt.l1_id is not None:
                    # This host retired: the L0 takes it away at any moment. It writes nothing more;
                    # the new host's agent (its own process) finishes from observed state.
                    self.driving[node] = False
                    log.info("node %s: this host (L1 %d) retired; waiting for the end", node, rt.l1_id)
                    await asyncio.Event().wait()
                # The old L1 (and, on a real node, this process) is gone; the new L1's agent starts
                # from nothing but observed state and what the API server holds.
                log.info("node %s: switching over to the agent of the new host", node)
                self.generations[node] += 1
                self.runtimes[node] = self.make_runtime(self.runtimes[node])
                fresh = self._new_agent(self.runtimes[node])
                for name, body in agent.known().items():
                    fresh.update(body, name)
                self.agents[node] = fresh
            except Exception:
                # One node's failure stays that node's: the process hosts other nodes' agents too.
                log.exception("node %s: its agent stopped on an error; starting it again", node)
                await asyncio.sleep(self.retry_seconds)

    async def _reread(self, node: str, agent: NodeAgent) -> None:
        """Fresh copies of this node's HostRefresh objects (retried: the node waits for them)."""
        while True:
            try:
                async for obj in self.client.list(HostRefreshResource):
                    body: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
                    if (body.get("spec") or {}).get("nodeName") == node:
                        agent.update(body, body["metadata"]["name"])
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node %s: could not read its HostRefresh objects; retrying", node)
                await asyncio.sleep(self.retry_seconds)

    async def _serve_until_driving(self, rt: NodeRuntime) -> None:
        """The new host's side before the retire: receive VMs and send recalled ones back."""
        serve_once = getattr(rt.migrator, "serve_once", None)
        loop = asyncio.get_running_loop()
        next_check = 0.0
        while True:
            if loop.time() >= next_check:
                try:
                    if await rt.primary():
                        return
                except Exception:  # an L0 query that failed: ask again, keep serving
                    log.exception("node %s: L0 query failed", rt.node)
                next_check = loop.time() + PRIMARY_CHECK_S
            if serve_once is not None:
                try:
                    await serve_once()
                except Exception:
                    log.exception("node %s: handover channel service failed; retrying", rt.node)
            await asyncio.sleep(SERVE_INTERVAL_S)

    async def _capabilities(self, node: str) -> str:
        """What ``node`` can do (its L0 asked once per runtime: a new L0 comes with a reboot)."""
        rt = self.runtimes[node]
        known = self._reported.get(node)
        if known is None or known[0] is not rt:
            report = annotation_value(await asyncio.to_thread(capabilities, rt.l0))
            self._reported[node] = known = (rt, report)
        return known[1]

    async def _heartbeats(self) -> None:
        interval = max(self.lease_seconds / 3, 0.5)
        beats = Heartbeats(self.client, self.namespace, self.lease_seconds)
        spread = 0.0  # the first round at once (the agents are alive as soon as possible), then spaced
        while True:
            started = asyncio.get_running_loop().time()
            holders = {
                agent_lease_name(node): (
                    agent.agent_id,
                    {**AGENT_COMPONENT_LABEL, NODE_LABEL: label_value(node)},
                    {NODE_ANNOTATION: node, CAPABILITIES_ANNOTATION: await self._capabilities(node)},
                )
                for node, agent in self.agents.items()
                if self.driving[node]
            }
            await beats.renew_all(holders, spread)
            spread = interval * 0.8
            self.healthy.set()
            elapsed = asyncio.get_running_loop().time() - started
            await asyncio.sleep(max(interval - elapsed, 0.1))

    async def _watch(self) -> None:
        # One node: let the API server filter (selectableFields); many: one watch for all.
        node = next(iter(self.agents)) if len(self.agents) == 1 else None
        while True:
            try:
                async for event, body in watch_refreshes(self.client, node):
                    agent = self.agents.get(str((body.get("spec") or {}).get("nodeName")))
                    if agent is not None:
                        agent.update(None if event == "DELETED" else body, body["metadata"]["name"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watch of HostRefresh objects broke; restarting it")
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(1)


async def watch_refreshes(client: AsyncClient, node: str | None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Watch events of the HostRefresh objects of ``node`` (None: of every node).

    The API server filters by ``spec.nodeName`` when the CRD declares it a selectable field
    (Kubernetes 1.31 on; 1.30 ignores the declaration and refuses the field selector with 400): then
    this watches every object and leaves the filtering to the caller, at the cost of more events.
    """
    fields: Any = {"spec.nodeName": node} if node is not None else None
    try:
        async for event, obj in client.watch(HostRefreshResource, fields=fields):
            yield event, obj.to_dict()  # type: ignore[no-untyped-call]
        return
    except Exception as exc:
        if fields is None or status_code(exc) != BAD_REQUEST:
            raise
        log.warning(
            "the API server cannot select HostRefresh objects by spec.nodeName (%s; Kubernetes before 1.31); "
            "watching all of them",
            exc,
        )
    async for event, obj in client.watch(HostRefreshResource):
        yield event, obj.to_dict()  # type: ignore[no-untyped-call]
