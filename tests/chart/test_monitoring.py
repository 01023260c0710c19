"""Scraping and the Grafana dashboard: each monitor kind has its own labels and sets the job names the
alerts read; the chart refuses set-ups where monitoring would be doubled or blind, naming the fix; the
dashboard is off by default, carries the sidecar's label, and reads only metrics the product exports,
in PromQL the real promtool parses."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostrefresh.controlplane.tools import ensure_promtool
from tests.chart.helpers import CHART_DIR, exported_metrics, find, metric_names, render, template

RUNBOOK = "prometheusRule.runbookBaseUrl=https://runbooks.example/troubleshooting.md"


def _sets(*pairs: str) -> list[str]:
    return [a for pair in pairs for a in ("--set", pair)]


@pytest.mark.parametrize(("monitor", "kind"), [("podMonitor", "PodMonitor"), ("serviceMonitor", "ServiceMonitor")])
def test_each_monitor_has_its_own_labels_and_sets_the_job_names(helm_home: Path, monitor: str, kind: str) -> None:
    manifests = render(
        helm_home,
        {
            f"{monitor}.enabled": "true",
            f"{monitor}.labels.release": "kube-prom",
            f"{monitor}.interval": "30s",
            "prometheusRule.labels.rules": "only-the-rule",
            "metricsJobs.agent": "hypervisor-agents",
        },
    )
    monitors = {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}
    assert set(monitors) == {"hr-hostrefresh-operator", "hr-hostrefresh-agent"}
    for name, m in monitors.items():
        assert m["metadata"]["labels"]["release"] == "kube-prom"
        assert "rules" not in m["metadata"]["labels"]  # prometheusRule.labels are the rule's alone
        [endpoint] = m["spec"]["podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"]
        assert endpoint["interval"] == "30s"
        job = "hypervisor-agents" if name.endswith("-agent") else "hostrefresh-operator"
        assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": job}]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["podMonitor.enabled=true", "serviceMonitor.enabled=true"],
            "podMonitor.enabled and serviceMonitor.enabled are both true",
        ),
        (
            ["serviceMonitor.enabled=true", "metricsService.enabled=false"],
            "serviceMonitor.enabled needs metricsService.enabled",
        ),
        (
            ["prometheusRule.enabled=true", RUNBOOK],
            "nothing scrapes the operator and the agents",
        ),
        (
            [
                "prometheusRule.enabled=true",
                RUNBOOK,
                "podMonitor.enabled=true",
                "operator.metricsPort=0",
                "agent.metricsPort=0",
            ],
            "operator.metricsPort and agent.metricsPort are both 0",
        ),
    ],
    ids=["both-monitors", "service-monitor-without-service", "rule-without-scraping", "rule-without-metrics"],
)
def test_monitoring_that_would_be_doubled_or_blind_is_refused_naming_the_fix(
    helm_home: Path, values: list[str], message: str
) -> None:
    out = template(helm_home, *_sets(*values))
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_the_rule_alone_renders_with_a_scrape_configuration_of_ones_own(helm_home: Path) -> None:
    manifests = render(
        helm_home,
        extra=_sets("prometheusRule.enabled=true", RUNBOOK, "prometheusRule.ownScrapeConfig=true"),
    )
    find(manifests, "PrometheusRule")
    assert not [m for m in manifests if m["kind"] in ("PodMonitor", "ServiceMonitor")]


# -- the dashboard ----------------------------------------------------------------------------------


def _dashboard(helm_home: Path, *values: str) -> tuple[dict[str, Any], dict[str, Any]]:
    configmap = find(
        render(helm_home, extra=_sets("grafanaDashboard.enabled=true", *values)), "ConfigMap", "-dashboard"
    )
    [(key, text)] = configmap["data"].items()
    assert key.endswith(".json")
    return configmap, json.loads(text)


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out += panel.get("panels", [])
    return out


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def test_the_dashboard_is_off_by_default(helm_home: Path) -> None:
    assert not [m for m in render(helm_home) if m["kind"] == "ConfigMap"]


def test_the_dashboard_carries_the_sidecar_label_it_is_given(helm_home: Path) -> None:
    configmap, _ = _dashboard(helm_home)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "hostrefresh-system"
    configmap, dashboard = _dashboard(
        helm_home,
        "grafanaDashboard.sidecarLabel=example.org/dashboard",
        "grafanaDashboard.sidecarLabelValue=hypervisors",
        "grafanaDashboard.namespace=monitoring",
        "grafanaDashboard.annotations.grafana_folder=Platform",
        "metricsJobs.agent=hypervisor-agents",
    )
    labels = configmap["metadata"]["labels"]
    assert labels["example.org/dashboard"] == "hypervisors" and "grafana_dashboard" not in labels
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Platform"}
    [job] = [v for v in dashboard["templating"]["list"] if v["name"] == "agent_job"]
    assert job["query"] == "hypervisor-agents"


def test_the_dashboard_shows_progress_nesting_downtime_failures_and_versions(helm_home: Path) -> None:
    _, dashboard = _dashboard(helm_home)
    used = set().union(*(metric_names(e) for e in _exprs(dashboard)))
    for needed in (
        "hostrefresh_operator_plan_nodes",  # fleet progress
        "hostrefresh_operator_node_nested_since_timestamp_seconds",  # seconds nested so far
        "hostrefresh_operator_node_nested_seconds",  # and in the last refresh
        "hostrefresh_agent_handover_downtime_seconds_bucket",  # handover downtime
        "hostrefresh_operator_refreshes_total",  # failures
        "hostrefresh_agent_vms_lost",
        "hostrefresh_operator_plan_halted",
        "hostrefresh_operator_node_version_info",  # what each node runs
    ):
        assert needed in used, needed
    datasources = {p["datasource"]["uid"] for p in _panels(dashboard) if "datasource" in p}
    assert datasources == {"${datasource}"}  # the data source is a variable, not one Grafana's uid


def test_the_dashboard_reads_only_metrics_the_product_exports(helm_home: Path) -> None:
    _, dashboard = _dashboard(helm_home)
    exported = exported_metrics()
    for expr in _exprs(dashboard):
        assert metric_names(expr) <= exported, f"{expr}: {sorted(metric_names(expr) - exported)} not in src"
        others = set(re.findall(r"\b([a-z_:][a-z0-9_:]*)\{", expr)) - metric_names(expr)
        assert others <= {"up"}, expr
    # The variables' queries too (the plan picker lists the plans a metric names).
    for variable in dashboard["templating"]["list"]:
        for field in ("query", "definition"):
            text = variable.get(field)
            if isinstance(text, str):
                assert metric_names(text) <= exported, f"{variable['name']}: {text}"
    assert any(metric_names(str(v.get("query"))) for v in dashboard["templating"]["list"])


def test_the_dashboards_promql_parses(helm_home: Path, tmp_path: Path) -> None:
    _, dashboard = _dashboard(helm_home)
    grafana = {"$__rate_interval": "5m", "$__range": "6h", "$plan": ".*", "$agent_job": "hostrefresh-agent"}
    rules = []
    for i, expr in enumerate(_exprs(dashboard)):
        query = expr
        for variable, value in grafana.items():
            query = query.replace(variable, value)
        assert "$" not in query, expr
        rules.append({"record": f"dashboard:panel_{i}", "expr": query})
    (tmp_path / "dashboard.rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    out = subprocess.run(
        [str(ensure_promtool()), "check", "rules", "dashboard.rules.yaml"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_dashboard_file_is_the_one_shipped(helm_home: Path) -> None:
    _, dashboard = _dashboard(helm_home)
    assert dashboard == json.loads((CHART_DIR / "dashboards" / "hostrefresh.json").read_text())
