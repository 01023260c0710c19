"""Run the real helm binary on the chart and read what it renders."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from hostrefresh.controlplane import ensure_tools

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "hostrefresh"
#: `helm template` renders for this Kubernetes version (the chart needs 1.30+; helm's default is older).
KUBE_VERSION = "1.34.0"

Manifest = dict[str, Any]


def unique(prefix: str) -> str:
    """A name nobody else in the shared control plane uses (nothing can be deleted there for good)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def helm_env(home: Path) -> dict[str, str]:
    """Keep helm's config, cache and data out of the user's home."""
    return dict(
        os.environ,
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_DATA_HOME=str(home / "data"),
    )


def helm(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the built helm."""
    cmd = [str(ensure_tools().helm), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=helm_env(home))
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n{result.stdout}")
    return result


def set_args(values: dict[str, str] | None) -> list[str]:
    out: list[str] = []
    for key, value in (values or {}).items():
        out += ["--set", f"{key}={value}"]
    return out


def template(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`helm template` the chart with ``args``, its result as it is (for values the schema refuses)."""
    return helm("template", "hr", str(CHART_DIR), "--kube-version", KUBE_VERSION, *args, home=home, check=False)


def render(
    home: Path,
    values: dict[str, str] | None = None,
    *,
    release: str = "hr",
    namespace: str = "hostrefresh-system",
    extra: Iterable[str] = (),
) -> list[Manifest]:
    """`helm template` the chart and parse every document."""
    out = helm(
        "template",
        release,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        *set_args(values),
        *extra,
        home=home,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(manifests: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    """The one manifest of ``kind`` whose name ends with ``name_suffix``."""
    hits = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(name_suffix)]
    assert len(hits) == 1, f"expected one {kind} *{name_suffix}, found {[m['metadata']['name'] for m in hits]}"
    return hits[0]


def rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """RBAC rules flattened to (apiGroup, resource, verb, resourceNames)."""
    out: set[tuple[str, str, str, tuple[str, ...]]] = set()
    for rule in rules:
        names = tuple(rule.get("resourceNames") or ())
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb, names))
    return out


def now_rfc3339() -> str:
    """Now as the API server writes MicroTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def manifest_json(obj: Manifest) -> str:
    """One object as JSON for ``kubectl create -f -``."""
    return json.dumps(obj)


#: A prometheus_client metric (or a custom collector's family) defined in the product's source.
_METRIC = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary|CounterMetricFamily|GaugeMetricFamily|HistogramMetricFamily)\(\s*\"(hostrefresh_\w+)\""
)


def exported_metrics() -> set[str]:
    """Every series name the operator and the agent export, as Prometheus sees it (a histogram's
    _bucket, _sum and _count; a counter with _total), from their prometheus_client definitions in src."""
    names: set[str] = set()
    for path in sorted((REPO_ROOT / "src" / "hostrefresh").rglob("*.py")):
        if "sim" in path.relative_to(REPO_ROOT / "src" / "hostrefresh").parts:
            continue  # the simulators' own, if any: not the product's
        for kind, name in _METRIC.findall(path.read_text()):
            if kind.startswith("Histogram"):
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind.startswith("Counter") and not name.endswith("_total"):
                names.add(f"{name}_total")
            else:
                names.add(name)
    return names


def metric_names(promql: str) -> set[str]:
    """The hostrefresh_ series names a PromQL expression reads."""
    return set(re.findall(r"\bhostrefresh_[a-z0-9_]+\b", promql))
