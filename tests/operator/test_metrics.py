"""The operator's metrics: live nested gauges computed at scrape time, plan progress, leader and
build info, and Prometheus naming conventions for every hostrefresh_ series."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hostrefresh.operator import metrics


def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_nested_gauges_are_live() -> None:
    since = datetime.now(UTC) - timedelta(seconds=42)
    metrics.NESTED_NOW.set("metrics-node", since)
    try:
        first = scrape()
        assert first["hostrefresh_nodes_nested"][()] >= 1
        seconds = first["hostrefresh_node_nested_seconds"][(("node", "metrics-node"),)]
        assert 42 <= seconds < 60
        stamp = first["hostrefresh_node_nested_since_timestamp_seconds"][(("node", "metrics-node"),)]
        assert stamp == since.timestamp()
    finally:
        metrics.NESTED_NOW.set("metrics-node", None)
    after = scrape()
    assert (("node", "metrics-node"),) not in after.get("hostrefresh_node_nested_seconds", {})


def test_plan_progress_and_forgetting_a_plan() -> None:
    metrics.set_plan("metrics-plan", {"pending": 3, "active": 2, "succeeded": 5, "failed": 1}, 2, True, True)
    got = scrape()
    nodes = got["hostrefresh_plan_nodes"]
    assert {dict(k)["state"]: v for k, v in nodes.items() if dict(k)["plan"] == "metrics-plan"} == {
        "pending": 3,
        "active": 2,
        "succeeded": 5,
        "failed": 1,
    }
    assert got["hostrefresh_plan_halted"][(("plan", "metrics-plan"),)] == 1
    assert got["hostrefresh_plan_waves_started"][(("plan", "metrics-plan"),)] == 2
    metrics.forget_plan("metrics-plan")
    assert all(dict(k).get("plan") != "metrics-plan" for k in scrape().get("hostrefresh_plan_nodes", {}))


def test_build_info_and_leader() -> None:
    got = scrape()
    (labels, value), *_ = got["hostrefresh_build_info"].items()
    assert dict(labels)["version"] == "0.1.0" and value == 1
    metrics.LEADER.set(1)
    assert scrape()["hostrefresh_operator_leader"][()] == 1
    metrics.LEADER.set(0)


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
