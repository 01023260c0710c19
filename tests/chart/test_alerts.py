"""The alerting rules, as the chart renders them into its PrometheusRule: promtool checks and
unit-tests them; every alert has a firing and a quiet test; thresholds and job names come from
values; every runbook_url is absolute and names a section of docs/troubleshooting.md; the rules read
only metrics the product exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostrefresh.controlplane.tools import ensure_promtool
from tests.chart.helpers import REPO_ROOT, exported_metrics, find, metric_names, render, template

TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
RUNBOOK = "https://runbooks.example/troubleshooting.md"
#: The values tests/chart/promtool/alerts_test.yaml expects the rules rendered with.
ON = {"prometheusRule.enabled": "true", "podMonitor.enabled": "true", "prometheusRule.runbookBaseUrl": RUNBOOK}
ALERTS = {
    "HostRefreshNodeNestedTooLong",
    "HostRefreshFailed",
    "HostRefreshPlanHalted",
    "HostRefreshAgentDown",
    "HostRefreshAgentNotScraped",
    "HostRefreshOperatorNotScraped",
    "HostRefreshNoLeader",
    "HostRefreshVMsLost",
}
OPERATOR_ALERTS = {
    "HostRefreshNodeNestedTooLong",
    "HostRefreshFailed",
    "HostRefreshPlanHalted",
    "HostRefreshNoLeader",
    "HostRefreshOperatorNotScraped",
}
#: Series the rules may read that the product does not export: Prometheus' own and kube-state-metrics'.
FOREIGN = {"up", "kube_daemonset_status_desired_number_scheduled", "kube_deployment_spec_replicas"}


def rules_of(helm_home: Path, values: dict[str, str] | None = None) -> dict[str, Any]:
    """The chart's PrometheusRule spec (a Prometheus rule file), release hr in hostrefresh-system."""
    spec: dict[str, Any] = find(render(helm_home, {**ON, **(values or {})}), "PrometheusRule")["spec"]
    return spec


def alerts_of(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"]}


def promtool(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ensure_promtool()), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def run_tests(tmp_path: Path, rules: dict[str, Any], tests: str) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` of ``tests`` (a test file naming rule_files: [hostrefresh.rules.yaml])."""
    (tmp_path / "hostrefresh.rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (tmp_path / "alerts_test.yaml").write_text(tests)
    return promtool(tmp_path, "test", "rules", "alerts_test.yaml")


@pytest.fixture(scope="module")
def rules(helm_home: Path) -> dict[str, Any]:
    return rules_of(helm_home)


def test_rules_are_valid(rules: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    out = promtool(tmp_path, "check", "rules", "rules.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in out.stdout


def test_rules_unit_tests_pass(rules: dict[str, Any], tmp_path: Path) -> None:
    out = run_tests(tmp_path, rules, TESTS.read_text())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_has_a_firing_and_a_quiet_test(rules: dict[str, Any]) -> None:
    assert set(alerts_of(rules)) == ALERTS
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t["exp_alerts"]}
    quiet = {t["alertname"] for case in tests for t in case["alert_rule_test"] if not t["exp_alerts"]}
    assert fired == ALERTS and quiet == ALERTS  # each fires when it should and stays quiet otherwise


def test_a_broken_expectation_fails(rules: dict[str, Any], tmp_path: Path) -> None:
    broken = TESTS.read_text().replace("node: slow", "node: quick", 1)
    out = run_tests(tmp_path, rules, broken)
    assert out.returncode != 0 and "HostRefreshNodeNestedTooLong" in out.stdout + out.stderr


def test_the_rules_read_only_metrics_the_product_exports(rules: dict[str, Any]) -> None:
    exported = exported_metrics()
    assert "hostrefresh_agent_vms_lost" in exported and "hostrefresh_operator_leader" in exported
    for name, rule in alerts_of(rules).items():
        used = metric_names(rule["expr"])
        assert used <= exported, f"{name} reads {sorted(used - exported)}, which src/hostrefresh does not export"
        others = set(re.findall(r"\b([a-z_:][a-z0-9_:]*)\{", rule["expr"])) - used
        assert others <= FOREIGN, f"{name} reads {sorted(others - FOREIGN)}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return out


def test_every_alert_has_an_absolute_runbook_url_naming_a_troubleshooting_section(rules: dict[str, Any]) -> None:
    anchors = _anchors((REPO_ROOT / "docs" / "troubleshooting.md").read_text())
    for name, rule in alerts_of(rules).items():
        annotations = rule["annotations"]
        assert "runbook" not in annotations, name  # the relative form Alertmanager templates do not know
        base, _, anchor = annotations["runbook_url"].partition("#")
        assert base == RUNBOOK and anchor in anchors, f"{name}: {annotations['runbook_url']}"


def test_the_rule_refuses_to_render_without_a_runbook_url(helm_home: Path) -> None:
    out = template(helm_home, "--set", "prometheusRule.enabled=true", "--set", "podMonitor.enabled=true")
    assert out.returncode != 0 and "prometheusRule.runbookBaseUrl is empty" in out.stderr, out.stderr
    relative = {**ON, "prometheusRule.runbookBaseUrl": "docs/troubleshooting.md"}
    out = template(helm_home, *[a for k, v in relative.items() for a in ("--set", f"{k}={v}")])
    assert out.returncode != 0 and "at '/prometheusRule/runbookBaseUrl'" in out.stderr, out.stderr


CUSTOM_TESTS = """
rule_files: [hostrefresh.rules.yaml]
evaluation_interval: 1m
tests:
  - name: the nested threshold and its for come from values
    interval: 1m
    input_series:
      - series: 'hostrefresh_operator_node_nested_since_timestamp_seconds{node="n"}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 11m
        alertname: HostRefreshNodeNestedTooLong
        exp_alerts: []
      - eval_time: 12m
        alertname: HostRefreshNodeNestedTooLong
        exp_alerts:
          - exp_labels: {severity: warning, node: n}
            exp_annotations:
              summary: "Node n has run nested for 12m 0s"
              description: "The refresh of node n keeps it nested (its VMs run under the L0) far longer than a refresh takes. Check it with `kubectl hostrefresh describe n`; abort it with `kubectl hostrefresh abort n` to roll back (before Retiring)."
              runbook_url: https://runbooks.example/troubleshooting.md#a-node-stays-nested
  - name: the agent job name comes from values
    interval: 1m
    input_series:
      - series: 'up{job="hypervisor-agents", instance="a:1"}'
        values: '0x10'
      - series: 'up{job="hostrefresh-agent", instance="b:1"}'
        values: '0x10'
    alert_rule_test:
      - eval_time: 1m
        alertname: HostRefreshAgentDown
        exp_alerts: []
      - eval_time: 3m
        alertname: HostRefreshAgentDown
        exp_alerts:
          - exp_labels: {severity: critical, job: hypervisor-agents, instance: "a:1"}
            exp_annotations:
              summary: "The hostrefresh agent on a:1 is down"
              description: "Without its agent a node cannot refresh, and a refresh under way on it rolls back (or fails, past Retiring) once timeouts.agentSilenceSeconds pass."
              runbook_url: https://runbooks.example/troubleshooting.md#an-agent-is-down
"""


def test_thresholds_and_job_names_come_from_values(helm_home: Path, tmp_path: Path) -> None:
    custom = rules_of(
        helm_home,
        {
            "prometheusRule.alerts.nestedTooLong.seconds": "600",
            "prometheusRule.alerts.nestedTooLong.for": "1m",
            "prometheusRule.alerts.agentDown.for": "2m",
            "prometheusRule.alerts.refreshFailed.window": "1h",
            "metricsJobs.agent": "hypervisor-agents",
        },
    )
    out = run_tests(tmp_path, custom, CUSTOM_TESTS)
    assert out.returncode == 0, out.stdout + out.stderr
    failed = alerts_of(custom)["HostRefreshFailed"]
    assert "[1h]" in failed["expr"] and failed["annotations"]["summary"].endswith("in the last 1h")
    # And the defaults do not fire this early: the same test fails on them.
    assert run_tests(tmp_path, rules_of(helm_home), CUSTOM_TESTS).returncode != 0


@pytest.mark.parametrize(
    ("component", "left_out"),
    [("agent", ALERTS - OPERATOR_ALERTS), ("operator", OPERATOR_ALERTS)],
)
def test_a_component_without_metrics_has_no_alerts(helm_home: Path, component: str, left_out: set[str]) -> None:
    rules = rules_of(helm_home, {f"{component}.metricsPort": "0"})
    assert set(alerts_of(rules)) == ALERTS - left_out
