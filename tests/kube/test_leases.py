"""Heartbeat renewals of many nodes spread over time (the API server sees a fleet, not a burst)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from hostrefresh.kube.leases import Heartbeats


class RecordingClient:
    """Answers a Lease replace at once and notes when it came."""

    def __init__(self) -> None:
        self.times: list[float] = []

    async def replace(self, lease: Lease) -> Lease:
        self.times.append(asyncio.get_running_loop().time())
        return lease


def _renew(spread: float, n: int = 5) -> list[float]:
    async def run() -> list[float]:
        client = RecordingClient()
        beats = Heartbeats(client, "ns", 30)  # type: ignore[arg-type]
        names = [f"lease-{i}" for i in range(n)]
        for name in names:  # known Leases: a renewal is one replace
            beats._leases[name] = Lease(metadata=ObjectMeta(name=name), spec=LeaseSpec(holderIdentity="x"))
        holders: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {name: ("agent", {}, {}) for name in names}
        start = asyncio.get_running_loop().time()
        assert await beats.renew_all(holders, spread) == []
        return [t - start for t in client.times]

    return asyncio.run(run())


def test_renewals_at_once_without_spread() -> None:
    assert max(_renew(0.0)) < 0.05


def test_renewals_are_spaced_over_the_spread() -> None:
    times = _renew(1.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.15 < gap < 0.3 for gap in gaps), times
    assert times[-1] < 1.0
