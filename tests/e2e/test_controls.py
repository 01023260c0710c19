"""User controls mid-refresh (pause, abort) and the components' observability endpoints."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from hostrefresh.l0 import Call, open_l0
from hostrefresh.sim.node import SimNodeSpec, create_sim_node

from .harness import Cluster, agent_process, operator_process, running, slow_node, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]
TERMINAL = {"Succeeded", "RolledBack", "Failed"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _patch(cluster: Cluster, name: str, spec: str) -> None:
    cluster.cp.kubectl("patch", "hostrefresh", name, "--type=merge", "-p", f'{{"spec":{spec}}}')


def test_pause_holds_between_steps_and_resume_continues(cluster: Cluster, tmp_path: Path) -> None:
    node = "ctl-pause"
    slow_node(tmp_path / "nodes", node, Call.NESTED_ENABLE, 1.5)
    cluster.add_node(node)
    with running(operator_process(cluster.cp, tmp_path, "op-pause"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh("pause-hr", node)
        wait_for(lambda: cluster.phase("pause-hr") == "NestedEnabling", interval=0.05, what="NestedEnabling")
        _patch(cluster, "pause-hr", '{"paused":true}')

        def held() -> bool:
            obj = cluster.get("hostrefresh", "pause-hr") or {}
            return ((obj.get("status") or {}).get("agent") or {}).get("message") == "paused between steps"

        wait_for(held, timeout=30, what="agent holds between steps")
        phase = cluster.phase("pause-hr")
        time.sleep(2)
        assert cluster.phase("pause-hr") == phase == "NestedEnabling"  # the step finished, no new one began
        _patch(cluster, "pause-hr", '{"paused":false}')
        assert cluster.wait_phase("pause-hr", TERMINAL)["status"]["phase"] == "Succeeded"


def test_abort_before_retiring_rolls_back(cluster: Cluster, tmp_path: Path) -> None:
    node = "ctl-abort"
    slow_node(tmp_path / "nodes", node, Call.L1_BOOT, 1.5)
    cluster.add_node(node)
    with running(operator_process(cluster.cp, tmp_path, "op-abort"), agent_process(cluster.cp, tmp_path, [node])):
        cluster.host_refresh("abort-hr", node)
        wait_for(lambda: cluster.phase("abort-hr") == "BootingTarget", interval=0.05, what="BootingTarget")
        _patch(cluster, "abort-hr", '{"abort":true}')
        done = cluster.wait_phase("abort-hr", TERMINAL)
    assert done["status"]["phase"] == "RolledBack"
    degraded = next(c for c in done["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "Aborted"
    with open_l0("sim", tmp_path / "nodes" / node / "l0.state") as l0:
        state = l0.query()
    assert [x.id for x in state.running_l1s] == [1] and not state.nested


def test_metrics_and_health_endpoints(cluster: Cluster, tmp_path: Path) -> None:
    node = "ctl-metrics"
    create_sim_node(tmp_path / "nodes", node, SimNodeSpec())
    cluster.add_node(node)
    op_metrics, op_health, ag_metrics, ag_health = (_free_port() for _ in range(4))
    op = operator_process(
        cluster.cp, tmp_path, "op-metrics", f"--metrics-port={op_metrics}", f"--health-port={op_health}"
    )
    agent = agent_process(cluster.cp, tmp_path, [node], f"--metrics-port={ag_metrics}", f"--health-port={ag_health}")
    with running(op, agent):
        cluster.host_refresh("metrics-hr", node)
        assert cluster.wait_phase("metrics-hr", TERMINAL)["status"]["phase"] == "Succeeded"

        def scrape(port: int, path: str = "/metrics") -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                return str(resp.read().decode())

        assert wait_for(lambda: scrape(op_health, "/healthz") == "ok", what="operator healthz")
        assert wait_for(lambda: scrape(ag_health, "/healthz") == "ok", what="agent healthz")
        # The node's record (written with the end of the refresh) reaches the operator by its watch.
        info = f'hostrefresh_operator_node_version_info{{host_version="2.0",node="{node}",qemu_version=""}} 1.0'
        op_text = wait_for(
            lambda: (
                (t := scrape(op_metrics))
                and 'hostrefresh_operator_refreshes_total{result="Succeeded",scope="Host"} 1.0' in t
                and info in t
                and t
            ),
            what="refresh counted and the node's version exported",
        )
        assert "hostrefresh_operator_reconcile_duration_seconds_count" in op_text
        assert f'hostrefresh_operator_node_nested_seconds{{node="{node}"}}' in op_text
        ag_text = scrape(ag_metrics)
        labels = f'node="{node}",result="done",scope="Host",step="Verifying"'
        assert f"hostrefresh_agent_steps_total{{{labels}}} 1.0" in ag_text
        labels = f'node="{node}",outcome="moved",path="zero-copy",scope="Host"'
        assert f"hostrefresh_agent_handovers_total{{{labels}}} 3.0" in ag_text
        assert f'hostrefresh_agent_handover_downtime_seconds_count{{node="{node}",scope="Host"}} 3.0' in ag_text
