"""Every edge value values.yaml documents passes the schema, renders, and the binaries take the flags
it renders into; a value past a documented limit is refused by the schema, naming the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hostrefresh.nodeagent.main import build_parser as agent_parser
from hostrefresh.nodeagent.main import check_args as agent_check_args
from hostrefresh.operator.main import parse_args as operator_parse_args
from tests.chart.helpers import find, render, template

#: (value, setting): each limit or special value the comments in values.yaml name.
EDGES = [
    ("operator.metricsPort", "0"),  # "0 turns it off"
    ("operator.healthPort", "0"),
    ("agent.metricsPort", "0"),
    ("agent.healthPort", "0"),
    ("operator.metricsPort", "65535"),
    ("operator.maxStartsPerSecond", "0"),  # "0: no limit"
    ("operator.maxStartsPerSecond", "0.5"),  # a rate, not a count
    ("operator.startBacklog", "0"),
    ("operator.leaseSeconds", "1"),
    ("agent.leaseSeconds", "1"),  # "1-90"
    ("agent.leaseSeconds", "90"),
]

PAST = [
    ("agent.leaseSeconds", "91", "/agent/leaseSeconds"),
    ("agent.leaseSeconds", "0", "/agent/leaseSeconds"),
    ("operator.maxStartsPerSecond", "-1", "/operator/maxStartsPerSecond"),
    ("agent.metricsPort", "-1", "/agent/metricsPort"),
    ("operator.healthPort", "65536", "/operator/healthPort"),
]


def _args(manifest: dict[str, Any]) -> list[str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return [str(a).replace("$(NODE_NAME)", "node-1").replace("$(POD_NAME)", "pod-1") for a in container["args"]]


@pytest.mark.parametrize(("key", "value"), EDGES, ids=[f"{k}={v}" for k, v in EDGES])
def test_a_documented_edge_value_renders_and_the_binaries_take_it(
    helm_home: Path, key: str, value: str, tmp_path: Path
) -> None:
    manifests = render(helm_home, extra=["--set-json", f"{key}={value}"])
    component, setting = key.split(".", maxsplit=1)
    if component == "operator":
        args = _args(find(manifests, "Deployment", "-operator"))
        config = operator_parse_args(args)
        flag = {"metricsPort": "metrics_port", "healthPort": "health_port", "leaseSeconds": "lease_seconds"}
        field = flag.get(setting, "")
        if field:
            assert getattr(config, field) == float(value)
    else:
        args = _args(find(manifests, "DaemonSet", "-agent"))
        parser = agent_parser()
        parsed = parser.parse_args(args)
        agent_check_args(parser, parsed)
    if key.endswith("metricsPort") and value == "0":
        # No metrics: no Service (whose port 0 the API server would refuse) and no monitor for it.
        monitored = render(
            helm_home,
            extra=[
                "--set-json",
                f"{key}=0",
                "--set",
                "serviceMonitor.enabled=true",
                "--set",
                "podMonitor.enabled=true",
            ],
        )
        names = [m["metadata"]["name"] for m in monitored if m["kind"] in ("Service", "ServiceMonitor", "PodMonitor")]
        assert not [n for n in names if n.endswith(f"{component}-metrics") or n.endswith(f"-{component}")], names


@pytest.mark.parametrize(("key", "value", "where"), PAST, ids=[f"{k}={v}" for k, v, _ in PAST])
def test_a_value_past_a_documented_limit_is_refused_naming_it(
    helm_home: Path, key: str, value: str, where: str
) -> None:
    result = template(helm_home, "--set-json", f"{key}={value}")
    assert result.returncode != 0 and f"at '{where}'" in result.stderr, result.stderr
