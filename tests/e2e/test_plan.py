"""RefreshPlan rollouts over simulated fleets, observed through a watch (not sampled at the end)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client

from hostrefresh.api.names import PLAN_LABEL
from hostrefresh.kube.client import sync_client
from hostrefresh.kube.resources import HostRefreshResource
from hostrefresh.l0 import Call, FaultRule, Status, open_l0
from hostrefresh.operator.gates import DEFAULT_TTL
from hostrefresh.sim.node import SimNodeSpec, create_sim_node
from tests.cli.fleet import Kubectl, plugin_dir

from .harness import Cluster, agent_process, operator_process, running, wait_for
from .prometheus import ALERT, prometheus

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]
TERMINAL = {"Succeeded", "RolledBack", "Failed"}


@dataclass
class RolloutWatch:
    """Every HostRefresh event of a plan; concurrency computed at each event."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_in_progress: int = 0
    canary_overlap: bool = False
    order: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def in_progress(self) -> list[str]:
        return [
            name
            for name, st in self.states.items()
            if st.get("directive") in ("Proceed", "RollBack") and st.get("phase") not in TERMINAL
        ]

    def observe(self, name: str, status: dict[str, Any], first_node: str | None, node: str) -> None:
        if name not in self.states:
            self.order.append(node)
        self.states[name] = status
        active = self.in_progress()
        self.max_in_progress = max(self.max_in_progress, len(active))
        # The canary (first node started) must be alone while it runs.
        canary = next((n for n, st in self.states.items() if st.get("node") == first_node), None)
        if canary in active and len(active) > 1:
            self.canary_overlap = True


@contextmanager
def watch_plan(client: Client, plan: str) -> Iterator[RolloutWatch]:
    seen = RolloutWatch()

    def loop() -> None:
        first: str | None = None
        while not seen.stop.is_set():
            try:
                for _, obj in client.watch(HostRefreshResource, labels={PLAN_LABEL: plan}, server_timeout=2):
                    body = obj.to_dict()  # type: ignore[no-untyped-call]
                    node = body["spec"]["nodeName"]
                    first = first or node
                    status = dict(body.get("status") or {})
                    status["node"] = node
                    seen.observe(body["metadata"]["name"], status, first, node)
                    if seen.stop.is_set():
                        return
            except Exception:
                time.sleep(0.1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        seen.stop.set()
        thread.join(5)


def _fleet(cluster: Cluster, root: Path, prefix: str, n: int, zones: int = 1) -> list[str]:
    nodes = [f"{prefix}-{i:02d}" for i in range(n)]
    for i, node in enumerate(nodes):
        create_sim_node(root, node, SimNodeSpec(sim_vms=2))
        with open_l0("sim", root / node / "l0.state") as l0:  # keep each refresh busy long enough to overlap
            l0.sim_inject_fault(FaultRule(call=Call.L1_BOOT, status=Status.OK, latency_s=0.4, times=1))
        cluster.add_node(node, {"fleet": prefix, "topology.kubernetes.io/zone": f"zone-{i % zones}"})
    return nodes


def _plan(cluster: Cluster, name: str, fleet: str, **spec: Any) -> None:
    cluster.apply(
        {
            "apiVersion": "hostrefresh.io/v1alpha1",
            "kind": "RefreshPlan",
            "metadata": {"name": name},
            "spec": {
                "nodeSelector": {"matchLabels": {"fleet": fleet}},
                "target": cluster.target_image("2.0"),
                "template": {"partition": {"cpus": 2, "memory": "1Gi"}},
                "soakSeconds": 0,
                **spec,
            },
        }
    )


def _children(cluster: Cluster, plan: str) -> list[dict[str, Any]]:
    out = cluster.cp.kubectl("get", "hostrefresh", "-l", f"{PLAN_LABEL}={plan}", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _plan_status(cluster: Cluster, name: str) -> dict[str, Any]:
    obj = cluster.get("refreshplan", name) or {}
    return obj.get("status") or {}


def test_twenty_nodes_max_unavailable_three_canary_one(cluster: Cluster, tmp_path: Path) -> None:
    nodes = _fleet(cluster, tmp_path / "nodes", "f20", 20, zones=3)
    client = sync_client(cluster.cp.kubeconfig)
    with (
        running(operator_process(cluster.cp, tmp_path, "op-f20"), agent_process(cluster.cp, tmp_path, nodes)),
        watch_plan(client, "f20") as seen,
    ):
        _plan(cluster, "f20", "f20", maxUnavailable=3, canary=1)
        wait_for(lambda: _plan_status(cluster, "f20").get("succeeded") == 20, timeout=240, what="20 nodes refreshed")
        status = _plan_status(cluster, "f20")
    assert seen.max_in_progress == 3, seen.max_in_progress  # reached, never exceeded
    assert not seen.canary_overlap
    assert len(seen.states) == 20 and all(st.get("phase") == "Succeeded" for st in seen.states.values())
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "RolloutComplete")
    # consecutive starts after the canary are spread across zones
    zones = [int(n.split("-")[1]) % 3 for n in seen.order[1:4]]
    assert len(set(zones)) == 3, seen.order


def test_pause_window_and_failure_threshold(cluster: Cluster, tmp_path: Path) -> None:
    root = tmp_path / "nodes"
    paused_nodes = _fleet(cluster, root, "fpause", 3)
    window_nodes = _fleet(cluster, root, "fwin", 2)
    fail_nodes = _fleet(cluster, root, "ffail", 4)
    for node in fail_nodes[:2]:  # the first two nodes in rollout order fail to boot the target
        with open_l0("sim", root / node / "l0.state") as l0:
            l0.sim_inject_fault(FaultRule(call=Call.L1_BOOT, status=Status.E_IMAGE, times=1))
    client = sync_client(cluster.cp.kubeconfig)
    all_nodes = paused_nodes + window_nodes + fail_nodes
    with (
        running(operator_process(cluster.cp, tmp_path, "op-gates"), agent_process(cluster.cp, tmp_path, all_nodes)),
        watch_plan(client, "fpause") as paused_seen,
        watch_plan(client, "fwin") as window_seen,
        watch_plan(client, "ffail") as fail_seen,
    ):
        _plan(cluster, "fpause", "fpause", paused=True, canary=0, maxUnavailable=3)
        hour = (time.gmtime().tm_hour + 12) % 24  # a window that is certainly not open now
        _plan(cluster, "fwin", "fwin", canary=0, maintenanceWindows=[{"schedule": f"0 {hour} * * *", "duration": "1h"}])
        _plan(cluster, "ffail", "ffail", canary=0, maxUnavailable=1, failureThreshold=1)

        wait_for(lambda: _plan_status(cluster, "fpause").get("paused") is True, what="plan reports paused")
        wait_for(
            lambda: any(
                c["reason"] == "OutsideMaintenanceWindow" for c in _plan_status(cluster, "fwin").get("conditions", [])
            ),
            what="window plan waits",
        )
        wait_for(lambda: _plan_status(cluster, "ffail").get("paused") is True, timeout=90, what="threshold pauses")
        time.sleep(3)  # nothing may start while paused / outside the window
        assert paused_seen.states == {} and window_seen.states == {}
        assert len(fail_seen.states) == 1, fail_seen.states  # the first failure paused the plan
        status = _plan_status(cluster, "ffail")
        assert status["failed"] == 1 and "failureThreshold" in status["pausedReason"]
        paused_cond = next(c for c in status["conditions"] if c["type"] == "Paused")
        assert (paused_cond["status"], paused_cond["reason"]) == ("True", "FailureThresholdReached")

        # resume: unpausing starts the paused plan
        cluster.cp.kubectl("patch", "refreshplan", "fpause", "--type=merge", "-p", '{"spec":{"paused":false}}')
        wait_for(lambda: _plan_status(cluster, "fpause").get("succeeded") == 3, timeout=120, what="resumed plan done")

        # retry (what `kubectl hostrefresh retry` does): the failed refresh stays as the record; the plan
        # starts its node again under a new name that names it, and that one succeeds (the fault fired once).
        (failed_name,) = fail_seen.states
        cluster.cp.kubectl("annotate", "hostrefresh", failed_name, "hostrefresh.io/retry=2026-12-07T00:00:00Z")

        def retry_done() -> dict[str, Any] | None:
            for item in _children(cluster, "ffail"):
                if (item["metadata"].get("annotations") or {}).get("hostrefresh.io/retry-of") == failed_name:
                    return item if (item.get("status") or {}).get("phase") == "Succeeded" else None
            return None

        retry = wait_for(retry_done, timeout=120, what="the retry of the failed node succeeded")
        assert retry["spec"]["nodeName"] == fail_seen.states[failed_name]["node"]
        record = cluster.get("hostrefresh", failed_name) or {}
        assert (record.get("status") or {}).get("phase") in ("Failed", "RolledBack"), "the record was lost"


def test_a_cordoned_node_waits_for_its_uncordon_unless_the_plan_includes_it(cluster: Cluster, tmp_path: Path) -> None:
    root = tmp_path / "nodes"
    waiting = _fleet(cluster, root, "fcord", 3)
    included = _fleet(cluster, root, "fincl", 2)
    cordoned = waiting[0]  # first in rollout order: it would be the canary
    for node in (cordoned, included[1]):
        cluster.cp.kubectl("cordon", node)
    client = sync_client(cluster.cp.kubeconfig)
    with (
        running(
            operator_process(cluster.cp, tmp_path, "op-cordon"), agent_process(cluster.cp, tmp_path, waiting + included)
        ),
        watch_plan(client, "fcord") as seen,
    ):
        _plan(cluster, "fcord", "fcord", canary=1, maxUnavailable=3)
        _plan(cluster, "fincl", "fincl", canary=0, maxUnavailable=2, cordonedNodes="Include")

        def holds() -> dict[str, Any] | None:
            status = _plan_status(cluster, "fcord")
            progressing: dict[str, Any] = next(
                (c for c in status.get("conditions", []) if c["type"] == "Progressing"), {}
            )
            if status.get("succeeded") == 2 and progressing.get("reason") == "NodesCordoned":
                return progressing
            return None

        progressing = wait_for(holds, timeout=120, what="the others refreshed, the cordoned node waits")
        assert progressing["status"] == "False" and cordoned in progressing["message"]
        assert "spec.cordonedNodes: Include" in progressing["message"]
        status = _plan_status(cluster, "fcord")
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
        assert (ready["status"], stalled["status"], status["pending"]) == ("False", "False", 1)
        assert cordoned not in {st["node"] for st in seen.states.values()}, "a cordoned node was started"
        wait_for(lambda: _plan_status(cluster, "fincl").get("succeeded") == 2, timeout=120, what="Include refreshed")

        cluster.cp.kubectl("uncordon", cordoned)
        wait_for(
            lambda: _plan_status(cluster, "fcord").get("succeeded") == 3, timeout=120, what="refreshed once uncordoned"
        )
    # The refresh left each cordon as it found it: the included node is still cordoned.
    for node in (cordoned, included[1]):
        assert bool((cluster.get("node", node) or {})["spec"].get("unschedulable")) is (node != cordoned), node


def _progressing(cluster: Cluster, plan: str) -> dict[str, Any]:
    conditions = _plan_status(cluster, plan).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Progressing"), {})


def test_a_plan_waits_for_approval_after_its_canary_and_for_a_quiet_alert(cluster: Cluster, tmp_path: Path) -> None:
    """The operator holds the rollout after the canary until `kubectl hostrefresh approve`, then while a
    real Prometheus reports the gate's alert firing, and rolls on once it resolves."""
    nodes = _fleet(cluster, tmp_path / "nodes", "fgate", 3)
    kc = Kubectl(cluster.cp, plugin_dir(tmp_path / "plugin"))
    with prometheus(tmp_path / "prometheus") as prom:
        operator = operator_process(cluster.cp, tmp_path, "op-approval", f"--prometheus-url={prom.url}")
        with running(operator, agent_process(cluster.cp, tmp_path, nodes)):
            _plan(
                cluster,
                "fgate",
                "fgate",
                canary=1,
                maxUnavailable=2,
                approval={"afterCanary": True},
                healthGates={"prometheus": {"alerts": [ALERT]}},
            )
            wait_for(lambda: _children(cluster, "fgate"), timeout=60, what="the canary started")
            # The alert fires while the canary runs: the gate is read only before a start, so the canary
            # finishes, and the approval gate (a person's act) is what the plan asks for first.
            prom.trouble.set(1)
            wait_for(prom.alert_firing, timeout=60, what="Prometheus fires the alert")
            firing_since = time.monotonic()
            wait_for(
                lambda: _progressing(cluster, "fgate").get("reason") == "AwaitingApproval",
                timeout=120,
                what="the canary refreshed and the plan waits for approval",
            )
            status = _plan_status(cluster, "fgate")
            assert (status["succeeded"], status["awaitingApproval"], len(_children(cluster, "fgate"))) == (1, 2, 1)
            assert "kubectl hostrefresh approve fgate" in _progressing(cluster, "fgate")["message"]
            events = cluster.cp.kubectl("events", "--for", "refreshplan/fgate").stdout
            assert "AwaitingApproval" in events, events

            # A reading the operator took before the alert fired is kept for at most gates.DEFAULT_TTL.
            time.sleep(max(0.0, DEFAULT_TTL + 1 - (time.monotonic() - firing_since)))
            approved = kc.run("approve", "fgate")
            assert approved.returncode == 0 and "wave 2 approved" in approved.stdout, approved.stderr
            plan_obj = cluster.get("refreshplan", "fgate") or {}
            assert plan_obj["metadata"]["annotations"]["hostrefresh.io/approved-wave"] == "2"
            closed = wait_for(
                lambda: (p := _progressing(cluster, "fgate")).get("reason") == "HealthGateClosed" and p,
                timeout=60,
                what="approved, the plan now waits for the alert",
            )
            assert f"alert {ALERT} is firing" in closed["message"], closed
            time.sleep(3)  # nothing starts while the alert fires
            assert len(_children(cluster, "fgate")) == 1

            prom.trouble.set(0)
            wait_for(lambda: _plan_status(cluster, "fgate").get("succeeded") == 3, timeout=180, what="rolled out")
            assert _plan_status(cluster, "fgate").get("awaitingApproval") is None
