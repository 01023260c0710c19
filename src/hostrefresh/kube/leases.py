"""coordination.k8s.io Leases: agent heartbeats and the operator's leader election.

Both are plain Lease objects; every write carries the resourceVersion it read, so two writers
racing for the same Lease cannot both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lightkube import ALL_NS, AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from hostrefresh.kube.errors import is_transient
from hostrefresh.kube.link import ApiLink

log = logging.getLogger("hostrefresh.leases")
CONFLICT, NOT_FOUND = 409, 404
#: How soon a leader tries again to renew after the API server did not answer.
RETRY_SECONDS = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


class Heartbeats:
    """Create and renew heartbeat Leases (one per node; the node's agent is the only writer).

    The last Lease written is kept, so a renewal is one PUT (carrying its resourceVersion) instead of
    a GET and a PUT; only a conflict or a missing Lease costs a read. Renewals of many nodes run
    concurrently, bounded, so a host of a thousand simulated nodes renews them all well within a
    Lease duration.
    """

    def __init__(self, client: AsyncClient, namespace: str, duration_seconds: int, concurrency: int = 32) -> None:
        self.client, self.namespace, self.duration = client, namespace, duration_seconds
        self._leases: dict[str, Lease] = {}
        self._limit = asyncio.Semaphore(concurrency)

    async def renew(
        self, name: str, holder: str, labels: dict[str, str], annotations: dict[str, str] | None = None
    ) -> None:
        async with self._limit:
            now = _now()
            lease = self._leases.get(name)
            if lease is not None and lease.spec is not None:
                lease.spec.holderIdentity, lease.spec.renewTime = holder, now
                try:
                    self._leases[name] = await self.client.replace(lease)
                    return
                except ApiError as exc:
                    if exc.status.code not in (CONFLICT, NOT_FOUND):
                        raise
            self._leases[name] = await self._read_and_write(name, holder, labels, annotations, now)

    async def _read_and_write(
        self, name: str, holder: str, labels: dict[str, str], annotations: dict[str, str] | None, now: datetime
    ) -> Lease:
        try:
            lease = await self.client.get(Lease, name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != NOT_FOUND:
                raise
            fresh = Lease(
                metadata=ObjectMeta(name=name, namespace=self.namespace, labels=labels, annotations=annotations),
                spec=LeaseSpec(
                    holderIdentity=holder, leaseDurationSeconds=self.duration, acquireTime=now, renewTime=now
                ),
            )
            return await self.client.create(fresh)
        assert lease.spec is not None
        lease.spec.holderIdentity, lease.spec.renewTime = holder, now
        lease.spec.leaseDurationSeconds = self.duration
        # A new agent process (an upgrade, a restart) states its labels and annotations afresh.
        if lease.metadata is not None:
            lease.metadata.labels = {**(lease.metadata.labels or {}), **labels}
            lease.metadata.annotations = {**(lease.metadata.annotations or {}), **(annotations or {})}
        return await self.client.replace(lease)

    async def renew_all(
        self, holders: dict[str, tuple[str, dict[str, str], dict[str, str]]], spread: float = 0.0
    ) -> list[str]:
        """Renew every ``name -> (holder, labels, annotations)`` concurrently; returns the names that failed.

        With ``spread`` seconds the renewals are spaced evenly over that time: a host of many
        simulated nodes then renews like a fleet of separate agents, not in one burst of writes.
        """
        names = list(holders)
        step = spread / len(names) if names and spread > 0 else 0.0

        async def renew_at(index: int, name: str) -> None:
            if step:
                await asyncio.sleep(index * step)
            await self.renew(name, *holders[name])

        results = await asyncio.gather(*(renew_at(i, name) for i, name in enumerate(names)), return_exceptions=True)
        failed = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("heartbeat Lease %s not renewed: %s", name, result)
                failed.append(name)
        return failed


class LeadershipLostError(RuntimeError):
    """Another replica holds the leader Lease now; this one must stop acting."""


class LeaderElector:
    """Lease-based leader election, as client-go's leaderelection does it."""

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        link: ApiLink | None = None,
    ):
        self.client, self.namespace, self.name, self.identity = client, namespace, name, identity
        self.lease_seconds = lease_seconds
        #: After an unanswered renewal: an API server that restarts again and again is up only in short
        #: windows, which renewals a third of a Lease apart can all miss.
        self.retry_seconds = min(RETRY_SECONDS, lease_seconds / 10)
        self.link = link or ApiLink()  # every attempt tells it whether the API server answered
        self._rivals_said: set[tuple[str, str]] = set()

    async def _attempt(self) -> bool | None:
        """One acquire-or-renew: True held, False another replica holds it, None the API server failed."""
        try:
            held = await self._try_acquire()
        except Exception as exc:
            if not is_transient(exc):
                self.link.answered()
                raise
            self.link.unanswered()
            log.warning("leader Lease %s/%s: API server unavailable (%s); trying again", self.namespace, self.name, exc)
            return None
        self.link.answered()
        return held

    async def _try_acquire(self) -> bool:
        now = _now()
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != NOT_FOUND:
                raise
            if await self._rival(now, None):
                return False
            fresh = Lease(
                metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                spec=LeaseSpec(
                    holderIdentity=self.identity,
                    leaseDurationSeconds=int(self.lease_seconds),
                    acquireTime=now,
                    renewTime=now,
                    leaseTransitions=0,
                ),
            )
            try:
                await self.client.create(fresh)
            except ApiError as create_exc:
                if create_exc.status.code == CONFLICT:
                    return False
                raise
            return True
        spec = lease.spec
        assert spec is not None
        renewed = spec.renewTime or spec.acquireTime
        expired = renewed is None or now > renewed + timedelta(seconds=spec.leaseDurationSeconds or self.lease_seconds)
        if spec.holderIdentity != self.identity and not expired:
            return False
        if await self._rival(now, spec.acquireTime if spec.holderIdentity == self.identity else None):
            return False
        if spec.holderIdentity != self.identity:
            spec.leaseTransitions = (spec.leaseTransitions or 0) + 1
            spec.acquireTime = now
        spec.holderIdentity = self.identity
        spec.renewTime = now
        spec.leaseDurationSeconds = int(self.lease_seconds)
        try:
            await self.client.replace(lease)  # carries the resourceVersion we read
        except ApiError as exc:
            if exc.status.code == CONFLICT:
                return False
            raise
        return True

    async def _rival(self, now: datetime, acquired: datetime | None) -> Lease | None:
        """A live leader Lease of this name in another namespace: another release of the operator in
        the same cluster, acting on the same objects. Two must never both act, and each release's
        Lease lives in its own namespace, so each looks at the others' too. Of two that both lead (they
        started at the same moment), the one that acquired later (then: whose namespace sorts later)
        gives way. ``acquired``: when this one acquired its Lease, None when it does not hold it."""
        async for lease in self.client.list(Lease, namespace=ALL_NS, fields={"metadata.name": self.name}):
            ns, spec = lease.metadata.namespace if lease.metadata else None, lease.spec
            if ns is None or ns == self.namespace or spec is None or not spec.holderIdentity:
                continue
            renewed = spec.renewTime or spec.acquireTime
            if renewed is None or now > renewed + timedelta(seconds=spec.leaseDurationSeconds or self.lease_seconds):
                continue  # a release uninstalled or stopped: its Lease ran out
            if acquired is not None and (spec.acquireTime or renewed, ns) > (acquired, self.namespace):
                continue  # it came second: it gives way
            if (ns, spec.holderIdentity) not in self._rivals_said:
                self._rivals_said.add((ns, spec.holderIdentity))
                log.error(
                    "another hostrefresh operator leads in namespace %s (Lease %s/%s, held by %s): two releases "
                    "in one cluster must not both act, so this one (namespace %s) waits; uninstall one of them",
                    ns,
                    ns,
                    self.name,
                    spec.holderIdentity,
                    self.namespace,
                )
            return lease
        return None

    async def run(self, lead: Callable[[], Awaitable[Any]]) -> None:
        """Wait for leadership, run ``lead`` while holding it; raise LeadershipLostError when lost.

        The API server may be away for a moment (restarted, etcd electing): an attempt that fails for
        that is tried again. While waiting to lead, for as long as it takes; while leading, until the
        Lease runs out (the renew deadline, as client-go has it): past that another replica may lead.
        """
        while not await self._attempt():
            await asyncio.sleep(self.lease_seconds / 3)
        log.info("acquired leadership as %s", self.identity)
        renewed = asyncio.get_running_loop().time()
        pause = self.lease_seconds / 3
        task = asyncio.ensure_future(lead())
        try:
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=pause)
                if done:
                    break
                left = self.lease_seconds - (asyncio.get_running_loop().time() - renewed)
                try:  # an attempt that hangs (a server half up) must not outlast the Lease either
                    held = await asyncio.wait_for(self._attempt(), max(left, 0.1))
                except TimeoutError:
                    held = None
                now = asyncio.get_running_loop().time()
                if held:
                    renewed, pause = now, self.lease_seconds / 3
                elif held is False or now - renewed >= self.lease_seconds:
                    raise LeadershipLostError(f"{self.identity} lost the leader Lease {self.namespace}/{self.name}")
                else:  # unanswered: try again soon (client-go's retry period), not a third of a Lease later
                    pause = self.retry_seconds
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
