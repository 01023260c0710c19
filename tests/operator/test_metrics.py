"""The operator's metrics: the one nested-seconds family computed at scrape time, what each node runs,
refreshes by scope, plan progress, leader and build info, and Prometheus naming conventions for every
hostrefresh_ series."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hostrefresh.api import HostRefreshStatus, Phase
from hostrefresh.api.names import HOST_VERSION_KEY, QEMU_VERSION_KEY
from hostrefresh.nodeagent import metrics as agent_metrics
from hostrefresh.operator import handlers, metrics, reconcile_refresh
from tests.operator.helpers import host_refresh


def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_the_nested_family_is_live_while_nested_then_holds_the_last_refresh() -> None:
    node = ("node", "metrics-node")
    since = datetime.now(UTC) - timedelta(seconds=42)
    metrics.NESTED_NOW.set("metrics-node", since)
    try:
        first = scrape()
        assert first["hostrefresh_operator_nodes_nested"][()] >= 1
        seconds = first["hostrefresh_operator_node_nested_seconds"][(node,)]
        assert 42 <= seconds < 60
        stamp = first["hostrefresh_operator_node_nested_since_timestamp_seconds"][(node,)]
        assert stamp == since.timestamp()
    finally:
        metrics.NESTED_NOW.ended("metrics-node", 57.5)
    after = scrape()
    assert after["hostrefresh_operator_node_nested_seconds"][(node,)] == 57.5  # frozen at the refresh's total
    assert (node,) not in after.get("hostrefresh_operator_node_nested_since_timestamp_seconds", {})
    # The agent exports no second gauge of the same seconds.
    assert not [n for n in scrape() if n.startswith("hostrefresh_agent_nested")]


def _ended(scope: str, nested: float) -> None:
    """A refresh of metrics-node of ``scope`` goes from Verifying to Succeeded having nested ``nested`` s."""
    now = datetime.now(UTC)
    status_json = {"phase": "Verifying", "phaseTimestamps": {"Verifying": (now - timedelta(seconds=3)).isoformat()}}
    if scope == "VMM":
        qemu = {"binary": "/var/lib/hostrefresh/images/q/qemu", "checksum": "sha256:" + "0" * 64}
        hr = host_refresh(status_json, nodeName="metrics-node", scope="VMM", target={"version": "9.2", "qemu": qemu})
    else:
        hr = host_refresh(status_json, nodeName="metrics-node")
    status = HostRefreshStatus(
        phase=Phase.SUCCEEDED,
        phase_timestamps={"Verifying": now - timedelta(seconds=3), "Succeeded": now},
        nested_seconds=nested,
    )
    reconcile_refresh._observe_transition(hr, status)


def test_a_refresh_is_counted_by_scope_and_only_a_host_refresh_sets_the_nested_seconds() -> None:
    def count(scope: str) -> float:
        return (
            scrape()
            .get("hostrefresh_operator_refreshes_total", {})
            .get((("result", "Succeeded"), ("scope", scope)), 0.0)
        )

    host, vmm = count("Host"), count("VMM")
    _ended("Host", 61.0)
    assert (count("Host"), count("VMM")) == (host + 1, vmm)
    assert scrape()["hostrefresh_operator_node_nested_seconds"][(("node", "metrics-node"),)] == 61.0
    _ended("VMM", 0.0)
    assert (count("Host"), count("VMM")) == (host + 1, vmm + 1)
    # A VMM-only refresh never nests: the node's last host refresh's seconds stay.
    assert scrape()["hostrefresh_operator_node_nested_seconds"][(("node", "metrics-node"),)] == 61.0
    phases = scrape()["hostrefresh_operator_phase_duration_seconds_count"]
    assert phases[(("phase", "Verifying"), ("scope", "VMM"))] >= 1


def _node(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": annotations, "labels": {}}, "spec": {}, "status": {}}


def test_each_node_with_a_record_has_one_version_info_series() -> None:
    def info() -> dict[tuple[tuple[str, str], ...], float]:
        got = scrape().get("hostrefresh_operator_node_version_info", {})
        return {k: v for k, v in got.items() if dict(k)["node"].startswith("vi-")}

    index = cast(Any, handlers.node_index)
    asyncio.run(index(name="vi-never", body=_node("vi-never", {})))
    asyncio.run(index(name="vi-a", body=_node("vi-a", {HOST_VERSION_KEY: "6.12.4+kvm1"})))
    assert info() == {(("host_version", "6.12.4+kvm1"), ("node", "vi-a"), ("qemu_version", "")): 1.0}
    # A later VMM refresh adds the QEMU version: the node's series changes, it does not add a second.
    record = {HOST_VERSION_KEY: "6.12.4+kvm1", QEMU_VERSION_KEY: "9.2.0"}
    asyncio.run(index(name="vi-a", body=_node("vi-a", record)))
    assert info() == {(("host_version", "6.12.4+kvm1"), ("node", "vi-a"), ("qemu_version", "9.2.0")): 1.0}
    asyncio.run(cast(Any, handlers.node_deleted)(name="vi-a", event={"type": "DELETED"}))
    assert info() == {}
    assert handlers._deleted(cast(Any, {"type": "DELETED"})) and not handlers._deleted(cast(Any, {"type": "MODIFIED"}))


def test_plan_progress_and_forgetting_a_plan() -> None:
    metrics.set_plan("metrics-plan", {"pending": 3, "active": 2, "succeeded": 5, "failed": 1}, 2, True, True, 3)
    got = scrape()
    assert got["hostrefresh_operator_plan_awaiting_approval"][(("plan", "metrics-plan"),)] == 3
    nodes = got["hostrefresh_operator_plan_nodes"]
    assert {dict(k)["state"]: v for k, v in nodes.items() if dict(k)["plan"] == "metrics-plan"} == {
        "pending": 3,
        "active": 2,
        "succeeded": 5,
        "failed": 1,
    }
    assert got["hostrefresh_operator_plan_halted"][(("plan", "metrics-plan"),)] == 1
    assert got["hostrefresh_operator_plan_waves_started"][(("plan", "metrics-plan"),)] == 2
    metrics.forget_plan("metrics-plan")
    assert all(dict(k).get("plan") != "metrics-plan" for k in scrape().get("hostrefresh_operator_plan_nodes", {}))
    assert all(
        dict(k).get("plan") != "metrics-plan" for k in scrape().get("hostrefresh_operator_plan_awaiting_approval", {})
    )


def test_build_info_and_leader() -> None:
    got = scrape()
    for name in ("hostrefresh_operator_build_info", "hostrefresh_agent_build_info"):
        (labels, value), *_ = got[name].items()
        assert dict(labels)["version"] == "0.1.0" and value == 1
    metrics.LEADER.set(1)
    assert scrape()["hostrefresh_operator_leader"][()] == 1
    metrics.LEADER.set(0)


def test_each_process_exports_under_its_own_prefix() -> None:
    """One prefix convention: the operator's series start hostrefresh_operator_, the agent's hostrefresh_agent_."""
    assert agent_metrics.STEPS is not None  # both modules registered
    for family in REGISTRY.collect():
        if family.name.startswith("hostrefresh_"):
            assert family.name.startswith(("hostrefresh_operator_", "hostrefresh_agent_")), family.name


def test_names_follow_prometheus_conventions() -> None:
    names = {f.name for f in REGISTRY.collect() if f.name.startswith("hostrefresh_")}
    assert len(names) >= 15
    for family in REGISTRY.collect():
        if not family.name.startswith("hostrefresh_"):
            continue
        assert re.fullmatch(r"hostrefresh_[a-z0-9_]+", family.name), family.name
        assert "millis" not in family.name and "minutes" not in family.name  # base units only
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client adds _total to the samples
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "gauge":
            assert not family.name.endswith("_total"), family.name
        if family.name.endswith("_info"):
            assert family.type == "gauge" and all(s.value == 1 for s in family.samples), family.name
