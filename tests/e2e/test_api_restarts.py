"""kube-apiserver restarted at every step of a refresh of a two-host node: the refresh still succeeds.

An API server that restarts is a condition of the agents' link, not a failure of the step they are in.
Each step is held in a slow L0 call; the API server is killed just before that call returns, so the
step ends during the outage and the agent's next report (the step's Done, the next step's Running, the
new host's first read after the retire) meets a dead server. The refresh must end Succeeded with every
VM's whole memory intact in the new host: no step reported failed, nothing rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hostrefresh.controlplane import ControlPlane
from hostrefresh.l0 import FaultRule, Status
from hostrefresh.sim.guest.lab import GuestLab

from .harness import STEP_CALLS, Cluster, ensure_namespace
from .test_two_hosts import VMS, _assert_refreshed, _diag, _terminal, machine_running

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.qemu, pytest.mark.slow]

#: How long each step's L0 call takes: long enough for the agent's report of the step to get through
#: a previous restart (the API server back, plus the report's backoff) before the next kill is due.
SLOW_CALL_S = 9.0
#: The kill comes this long before the slow call returns; the server stays down a little longer.
KILL_BEFORE_END_S = 1.0
DOWN_S = 2.5
#: Each step held, and the call that holds it. The outage at Devirtualizing's end also meets
#: Verifying, which makes no slow call: it runs at once and its report is the refresh's last.
STEPS = STEP_CALLS


@pytest.fixture
def restartable(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Cluster]:
    """A control plane of the test's own (it is restarted), with the CRDs and the agents' namespace."""
    cp = ControlPlane(tmp_path_factory.mktemp("restarted-controlplane"))
    cp.start()
    try:
        cp.install_crds()
        ensure_namespace(cp)
        yield Cluster(cp, tmp_path)  # the test's directory: its agents allow the images put there
    finally:
        cp.stop()


def _agent(cluster: Cluster, name: str) -> dict[str, Any]:
    """The agent's report as the API server has it; {} while the server is away."""
    try:
        obj = cluster.get("hostrefresh", name) or {}
    except Exception:  # the API server is down (on purpose)
        return {}
    return dict((obj.get("status") or {}).get("agent") or {})


def test_kube_apiserver_restarted_at_every_step_of_a_two_host_refresh(
    restartable: Cluster, tmp_path: Path, lab: GuestLab
) -> None:
    cluster = restartable
    name = "api-restarts-hr"
    with machine_running(cluster, tmp_path, lab, "api-restarts") as node:
        node.launch(VMS)
        old_ns = node.pidns(1)
        for _, call in STEPS:
            node.arm(FaultRule(call=call, status=Status.OK, latency_s=SLOW_CALL_S, times=1))
        cluster.host_refresh(name, node.name)
        hit: list[str] = []
        for step, _ in STEPS:
            deadline = time.monotonic() + 120
            agent: dict[str, Any] = {}
            while time.monotonic() < deadline:
                agent = _agent(cluster, name)
                if agent.get("step") == step and agent.get("stepState") == "Running":
                    break
                if (agent.get("stepState") == "Failed") or _past(agent.get("step"), step):
                    break
                time.sleep(0.05)
            assert agent.get("step") == step and agent.get("stepState") == "Running", (
                f"{step} was never seen running (the restart for it could not be aimed): {agent}\n"
                f"{_diag(_status(cluster, name), node)}"
            )
            # The report is made a moment after the step starts (its slow call with it): kill the
            # API server shortly before that call returns.
            started = datetime.fromisoformat(agent["stepStartedAt"].replace("Z", "+00:00"))
            wait = SLOW_CALL_S - KILL_BEFORE_END_S - (datetime.now(UTC) - started).total_seconds()
            assert wait > 0, f"{step} seen running too late to aim the restart ({wait:.1f}s): {agent}"
            time.sleep(wait)
            cluster.cp.crash_restart("kube-apiserver", down_seconds=DOWN_S)
            hit.append(step)
        assert hit == [s for s, _ in STEPS]
        obj = _terminal(cluster, node, name)
        status = obj["status"]
        assert status["phase"] == "Succeeded", _diag(status, node)
        _assert_refreshed(cluster, node, name, old_ns, VMS)
        # The outages did meet the agents' reports (else the test tested nothing): the hosts' agents
        # logged reports made again after the API server did not answer. (Which host's reports meet
        # which outage depends on how long each step runs around its slow call.)
        retried = {
            log.name if log.parent.name == "logs" else log.parent.name: log.read_text(errors="replace").count(
                "API server unavailable"
            )
            for log in [*node.layout.hosts.glob("l1-*/agent.log"), *(node.layout.base / "logs").glob("*agent*.log")]
        }
        assert sum(retried.values()) >= 3, f"reports made again, per host's agent log: {retried}"


ORDER = [s for s, _ in STEPS] + ["Verifying"]


def _past(seen: Any, step: str) -> bool:
    return seen in ORDER and ORDER.index(seen) > ORDER.index(step)


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    try:
        return dict(((cluster.get("hostrefresh", name) or {}).get("status")) or {})
    except Exception:
        return {}
