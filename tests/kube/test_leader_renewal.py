"""When a leader renews its Lease: a third of a Lease apart while the API server answers, and soon
again when it does not (an API server restarted again and again is up only in short windows)."""

from __future__ import annotations

import asyncio

import pytest

from hostrefresh.kube.leases import LeaderElector, LeadershipLostError

LEASE = 1.5


class WindowedElector(LeaderElector):
    """An elector whose API server answers only inside the given windows of loop time (from its start)."""

    def __init__(self, up: list[tuple[float, float]]) -> None:
        super().__init__(None, "ns", "lease", "me", LEASE)  # type: ignore[arg-type]
        self.up, self.start, self.attempts = up, 0.0, list[float]()

    async def _try_acquire(self) -> bool:
        at = asyncio.get_running_loop().time() - self.start
        self.attempts.append(at)
        if at < 0.1 or any(lo <= at < hi for lo, hi in self.up):
            return True
        raise OSError("connection refused")  # what a dead API server's socket gives


def _lead(elector: WindowedElector, lead_for: float) -> str:
    async def run() -> str:
        elector.start = asyncio.get_running_loop().time()
        try:
            await elector.run(lambda: asyncio.sleep(lead_for))
        except LeadershipLostError:
            return "lost"
        return "led to the end"

    return asyncio.run(run())


def test_a_leader_renews_in_the_short_windows_a_restarting_api_server_is_up() -> None:
    # Renewals a third of a Lease apart fall at 0.5, 1 and 1.5 s, all while the server is down; it is
    # up only between them. A leader that retries soon after a failure renews in those windows.
    elector = WindowedElector(up=[(0.65, 0.9), (1.15, 1.4), (1.65, 1.9), (2.15, 2.4)])
    assert _lead(elector, lead_for=2.5) == "led to the end", elector.attempts


def test_a_leader_that_is_answered_renews_a_third_of_a_lease_apart() -> None:
    elector = WindowedElector(up=[(0.0, 10.0)])
    assert _lead(elector, lead_for=2.0) == "led to the end"
    gaps = [b - a for a, b in zip(elector.attempts, elector.attempts[1:], strict=False)]
    assert gaps and all(g == pytest.approx(LEASE / 3, abs=0.15) for g in gaps), gaps


def test_a_leader_whose_api_server_stays_away_gives_up_once_the_lease_ran_out() -> None:
    elector = WindowedElector(up=[])
    assert _lead(elector, lead_for=5.0) == "lost"
    assert elector.attempts[-1] == pytest.approx(LEASE, abs=0.6), elector.attempts
