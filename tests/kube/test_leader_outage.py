"""The operator's leader election across an API server outage (a real kube-apiserver, killed and back).

A leader keeps leading through an outage shorter than its Lease (client-go's renew deadline), and
gives up only once the Lease may have run out; a replica waiting to lead waits through any outage.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from lightkube import AsyncClient

from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.client import load_config
from hostrefresh.kube.leases import LeaderElector, LeadershipLostError

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("leader-outage"))
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def _lead_through_outage(cp: ControlPlane, lease_seconds: float, down_seconds: float) -> str:
    """Lead, kill the API server for ``down_seconds`` after a moment, then see how leading ended.

    The elector runs in a thread of its own: the API server is restarted from the main thread, since
    the control plane's processes die with the thread that started them (PR_SET_PDEATHSIG).
    """
    leading = threading.Event()
    outcome: list[str] = []

    async def run() -> None:
        client = AsyncClient(config=load_config(cp.kubeconfig))
        elector = LeaderElector(client, "default", f"outage-{lease_seconds}-{down_seconds}", "me", lease_seconds)

        async def lead() -> None:
            leading.set()
            await asyncio.sleep(down_seconds + 25)

        try:
            await asyncio.wait_for(elector.run(lead), down_seconds + 60)
            outcome.append("led to the end")
        except LeadershipLostError:
            outcome.append("lost")
        finally:
            await client.close()

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    assert leading.wait(30), "never led"
    cp.crash_restart("kube-apiserver", down_seconds)
    thread.join(down_seconds + 90)
    return outcome[0] if outcome else "no end"


def test_a_leader_keeps_leading_through_a_short_outage(own_cp: ControlPlane) -> None:
    assert _lead_through_outage(own_cp, lease_seconds=30, down_seconds=2) == "led to the end"


def test_a_leader_gives_up_once_its_lease_may_have_run_out(own_cp: ControlPlane) -> None:
    assert _lead_through_outage(own_cp, lease_seconds=3, down_seconds=8) == "lost"
