"""Two releases of the operator in one cluster (each with its leader Lease in its own namespace) never
both act: the one that came second waits while the other's Lease is live, and leads once it runs out.
Against a real kube-apiserver."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from lightkube import AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.client import load_config
from hostrefresh.kube.leases import LeaderElector, LeadershipLostError
from tests.e2e.harness import ensure_namespace

pytestmark = [pytest.mark.integration]

LEASE_S = 2.0


async def _lead_until(elector: LeaderElector, stop: asyncio.Event, led: list[str]) -> str:
    async def lead() -> None:
        led.append(elector.namespace)
        await stop.wait()

    try:
        await elector.run(lead)
    except LeadershipLostError:
        return "lost"
    return "ended"


def test_a_second_release_waits_while_the_first_leads_and_takes_over_when_it_is_gone(
    control_plane: ControlPlane,
) -> None:
    for ns in ("release-a", "release-b"):
        ensure_namespace(control_plane, ns)

    async def scenario() -> None:
        client = AsyncClient(config=load_config(control_plane.kubeconfig))
        name = "two-releases"
        first = LeaderElector(client, "release-a", name, "op-a", LEASE_S)
        second = LeaderElector(client, "release-b", name, "op-b", LEASE_S)
        led: list[str] = []
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        try:
            a = asyncio.create_task(_lead_until(first, stop_first, led))
            while led != ["release-a"]:
                await asyncio.sleep(0.05)
            b = asyncio.create_task(_lead_until(second, stop_second, led))
            await asyncio.sleep(4 * LEASE_S)  # many of the second's attempts
            assert led == ["release-a"], led
            stop_first.set()  # the first release goes (its Lease is left to run out)
            assert await a == "ended"
            for _ in range(int(10 * LEASE_S / 0.05)):
                if led == ["release-a", "release-b"]:
                    break
                await asyncio.sleep(0.05)
            assert led == ["release-a", "release-b"], led
            stop_second.set()
            assert await b == "ended"
        finally:
            await client.close()

    asyncio.run(scenario())


def test_of_two_releases_that_both_lead_the_later_one_gives_way(control_plane: ControlPlane) -> None:
    for ns in ("release-c", "release-d"):
        ensure_namespace(control_plane, ns)

    async def scenario() -> None:
        client = AsyncClient(config=load_config(control_plane.kubeconfig))
        name = "both-lead"
        led: list[str] = []
        stop = asyncio.Event()
        mine = LeaderElector(client, "release-d", name, "op-d", LEASE_S)
        try:
            leading = asyncio.create_task(_lead_until(mine, stop, led))
            while not led:
                await asyncio.sleep(0.05)
            # Another release that acquired its Lease earlier, as if both had started at one moment and
            # neither saw the other's Lease yet.
            now = datetime.now(UTC)
            other = Lease(
                metadata=ObjectMeta(name=name, namespace="release-c"),
                spec=LeaseSpec(
                    holderIdentity="op-c",
                    leaseDurationSeconds=60,
                    acquireTime=now - timedelta(seconds=30),
                    renewTime=now,
                ),
            )
            await client.create(other)
            assert await asyncio.wait_for(leading, 5 * LEASE_S) == "lost"
        finally:
            stop.set()
            await client.close()

    asyncio.run(scenario())
