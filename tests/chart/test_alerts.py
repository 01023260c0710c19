"""The alerting rules: promtool checks and unit-tests them; the chart ships exactly them as a
PrometheusRule when asked; every alert has a firing test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from hostrefresh.controlplane.tools import ensure_promtool
from tests.chart.helpers import CHART_DIR, find, render

RULES = CHART_DIR / "alerts" / "hostrefresh.rules.yaml"
TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
ALERTS = {
    "HostRefreshNodeNestedTooLong",
    "HostRefreshFailed",
    "HostRefreshPlanHalted",
    "HostRefreshAgentDown",
    "HostRefreshNoLeader",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_promtool()), *args], capture_output=True, text=True, timeout=300, cwd=TESTS.parent
    )


def test_rules_are_valid() -> None:
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 5 rules found" in out.stdout


def test_rules_unit_tests_pass() -> None:
    out = promtool("test", "rules", TESTS.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_firing_test() -> None:
    rules = yaml.safe_load(RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert names == ALERTS
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t["exp_alerts"]}
    quiet = {t["alertname"] for case in tests for t in case["alert_rule_test"] if not t["exp_alerts"]}
    assert fired == ALERTS and quiet == ALERTS  # each fires when it should and stays quiet otherwise


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    broken = TESTS.read_text().replace("node: slow", "node: quick", 1)
    copy = TESTS.parent / f".broken-{tmp_path.name}.yaml"
    copy.write_text(broken)
    try:
        out = promtool("test", "rules", copy.name)
    finally:
        copy.unlink()
    assert out.returncode != 0 and "HostRefreshNodeNestedTooLong" in out.stdout + out.stderr


def test_chart_ships_the_rules_when_enabled(helm_home: Path) -> None:
    assert not [m for m in render(helm_home) if m["kind"] in ("PrometheusRule", "PodMonitor")]
    manifests = render(helm_home, {"prometheusRule.enabled": "true", "podMonitor.enabled": "true"})
    rule = find(manifests, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    jobs = {
        m["metadata"]["name"]: m["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["replacement"]
        for m in manifests
        if m["kind"] == "PodMonitor"
    }
    assert jobs == {"hr-hostrefresh-agent": "hostrefresh-agent", "hr-hostrefresh-operator": "hostrefresh-operator"}
