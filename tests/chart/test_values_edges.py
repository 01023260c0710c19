"""Every edge value values.yaml documents passes the schema, renders, and the binaries take the flags
it renders into, with the value given; a value past a documented limit is refused by helm (the schema,
or the chart's own check where the schema cannot say it), naming the value.

Values are given in a values file, as a platform team writes them: helm reads its numbers as floats,
and prints a float of a million or more in exponent form (1e+06), which a whole-number flag refuses.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from hostrefresh.nodeagent.main import build_parser as agent_parser
from hostrefresh.nodeagent.main import check_args as agent_check_args
from hostrefresh.operator.config import OperatorConfig
from hostrefresh.operator.main import parse_args as operator_parse_args
from tests.chart.helpers import find, render, template

#: (value, setting): each limit or special value the comments in values.yaml name, both ends of each
#: range, 0 where 0 means off or no limit, and a large value where no upper limit is documented.
EDGES: list[tuple[str, Any]] = [
    ("operator.metricsPort", 0),  # "0 turns it off"
    ("operator.metricsPort", 1),
    ("operator.metricsPort", 65535),
    ("operator.healthPort", 0),  # "0 turns it and the liveness probe off"
    ("operator.healthPort", 65535),
    ("agent.metricsPort", 0),
    ("agent.metricsPort", 65535),
    ("agent.healthPort", 0),
    ("agent.healthPort", 1),
    ("operator.leaseSeconds", 1),
    ("operator.leaseSeconds", 3600),
    ("operator.planInterval", 0.001),  # "more than 0"
    ("operator.planInterval", 3600),
    ("operator.maxStartsPerSecond", 0),  # "0: no limit"
    ("operator.maxStartsPerSecond", 0.5),  # a rate, not a count
    ("operator.maxStartsPerSecond", 1000),
    ("operator.startBacklog", 0),
    ("operator.startBacklog", 1000000),  # no upper limit: rendered whole, not as 1e+06
    ("operator.eventsNamespace", "n" * 63),  # a namespace name, at most 63 characters
    ("operator.prometheusURL", ""),  # "empty: such a gate stays closed"
    ("operator.prometheusURL", "http://prometheus-operated.monitoring:9090"),
    ("operator.prometheusURL", "https://monitoring.example.org/prometheus"),  # a path prefix
    ("operator.markerAnnotations", []),  # "empty means the built-in default"
    ("operator.markerAnnotations", ["example.com/refreshing", "drain"]),
    ("agent.leaseSeconds", 1),  # "1-90"
    ("agent.leaseSeconds", 90),
    ("agent.maxImageBytes", 1),
    ("agent.maxImageBytes", 1099511627776),  # 1 TiB: rendered whole
    ("agent.vmCgroup", ""),  # "Empty: they stay in the agent's cgroup"
    ("agent.kernelParams", []),  # "An empty list allows none"
]

#: (value, setting, what helm's message must contain): one step past each documented limit.
PAST: list[tuple[str, Any, str]] = [
    ("agent.leaseSeconds", 91, "at '/agent/leaseSeconds'"),
    ("agent.leaseSeconds", 0, "at '/agent/leaseSeconds'"),
    ("operator.leaseSeconds", 0, "at '/operator/leaseSeconds'"),
    ("operator.planInterval", 0, "at '/operator/planInterval'"),
    ("operator.maxStartsPerSecond", -1, "at '/operator/maxStartsPerSecond'"),
    ("operator.startBacklog", -1, "at '/operator/startBacklog'"),
    ("agent.metricsPort", -1, "at '/agent/metricsPort'"),
    ("operator.healthPort", 65536, "at '/operator/healthPort'"),
    ("agent.maxImageBytes", 0, "at '/agent/maxImageBytes'"),
    ("operator.eventsNamespace", "", "at '/operator/eventsNamespace'"),
    ("operator.prometheusURL", "prometheus:9090", "at '/operator/prometheusURL'"),
    ("operator.prometheusURL", "http://prometheus:9090/api?x=1", "at '/operator/prometheusURL'"),
    ("operator.eventsNamespace", "Not_A_Namespace", "at '/operator/eventsNamespace'"),
    ("operator.eventsNamespace", "n" * 64, "at '/operator/eventsNamespace'"),
    ("operator.markerAnnotations", ["not a key"], "at '/operator/markerAnnotations/0'"),
    ("operator.markerAnnotations", ["Example.com/x"], "at '/operator/markerAnnotations/0'"),
    ("agent.kernelParams", ["init=/bin/sh"], "at '/agent/kernelParams/0'"),
    ("agent.vmCgroup", "a/b", "at '/agent/vmCgroup'"),
    ("agent.imageDirs", ["images"], 'agent.imageDirs: "images" is not an absolute path'),
    ("agent.hostStateDir", "var/lib/hostrefresh", "at '/agent/hostStateDir'"),
]

#: (values, what helm's message must contain): combinations the binaries refuse, which no single
#: value's schema can see.
CLASHES: list[tuple[dict[str, Any], str]] = [
    ({"operator": {"metricsPort": 9000, "healthPort": 9000}}, "operator.metricsPort and operator.healthPort"),
    ({"agent": {"metricsPort": 9000, "healthPort": 9000}}, "agent.metricsPort and agent.healthPort"),
]

#: The parsed setting each value becomes, by (component, value name): the operator's OperatorConfig
#: field, or the agent's argparse destination.
PARSED = {
    "metricsPort": "metrics_port",
    "healthPort": "health_port",
    "leaseSeconds": "lease_seconds",
    "planInterval": "plan_interval",
    "maxStartsPerSecond": "max_starts_per_second",
    "startBacklog": "start_backlog",
    "eventsNamespace": "events_namespace",
    "prometheusURL": "prometheus_url",
    "markerAnnotations": "marker_annotations",
    "maxImageBytes": "max_image_bytes",
    "vmCgroup": "vm_cgroup",
    "kernelParams": "kernel_param",
}


def _values_file(tmp_path: Path, key: str, value: Any) -> Path:
    """A values file setting the dotted ``key`` to ``value``."""
    tree: dict[str, Any] = {}
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _args(manifest: dict[str, Any]) -> list[str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return [str(a).replace("$(NODE_NAME)", "node-1").replace("$(POD_NAME)", "pod-1") for a in container["args"]]


def _operator(args: list[str]) -> OperatorConfig:
    return operator_parse_args(args)


def _agent(args: list[str]) -> argparse.Namespace:
    parser = agent_parser()
    parsed = parser.parse_args(args)
    agent_check_args(parser, parsed)
    return parsed


def _expected(setting: str, value: Any) -> Any:
    if setting == "markerAnnotations":
        return tuple(value) if value else OperatorConfig.marker_annotations
    if setting == "prometheusURL":
        return value or None
    return value


@pytest.mark.parametrize(("key", "value"), EDGES, ids=[f"{k}={v!r:.20}" for k, v in EDGES])
def test_a_documented_edge_value_renders_and_the_binaries_take_it(
    helm_home: Path, key: str, value: Any, tmp_path: Path
) -> None:
    values = _values_file(tmp_path, key, value)
    manifests = render(helm_home, extra=["-f", str(values)])
    component, setting = key.split(".", maxsplit=1)
    parsed: Any
    if component == "operator":
        parsed = _operator(_args(find(manifests, "Deployment", "-operator")))
    else:
        parsed = _agent(_args(find(manifests, "DaemonSet", "-agent")))
    assert getattr(parsed, PARSED[setting]) == _expected(setting, value)
    if setting == "metricsPort" and value == 0:
        # No metrics: no Service (whose port 0 the API server would refuse) and no monitor for it.
        for monitor in ("serviceMonitor", "podMonitor"):
            monitored = render(helm_home, extra=["-f", str(values), "--set", f"{monitor}.enabled=true"])
            kinds = ("Service", "ServiceMonitor", "PodMonitor")
            names = [m["metadata"]["name"] for m in monitored if m["kind"] in kinds]
            assert not [n for n in names if n.endswith(f"{component}-metrics") or n.endswith(f"-{component}")], names


@pytest.mark.parametrize(("key", "value", "message"), PAST, ids=[f"{k}={v!r:.20}" for k, v, _ in PAST])
def test_a_value_past_a_documented_limit_is_refused_naming_it(
    helm_home: Path, key: str, value: Any, message: str, tmp_path: Path
) -> None:
    result = template(helm_home, "-f", str(_values_file(tmp_path, key, value)))
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize(("values", "message"), CLASHES, ids=[m.split()[0] for _, m in CLASHES])
def test_values_the_binaries_refuse_together_are_refused_naming_them(
    helm_home: Path, values: dict[str, Any], message: str, tmp_path: Path
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = template(helm_home, "-f", str(path))
    assert result.returncode != 0 and message in result.stderr, result.stderr
