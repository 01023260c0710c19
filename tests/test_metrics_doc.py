"""docs/metrics.md lists every metric the operator and the agent register, each with its type and
labels, and names none that the code no longer registers."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
#: The modules that register the product's metrics; main imports everything each process runs.
MODULES = ("hostrefresh.operator.main", "hostrefresh.nodeagent.main")
#: A row of the doc's tables: | `name` | type | `label`, `label` (or —) | meaning |
ROW = re.compile(r"^\| `(hostrefresh_[a-z0-9_]+)` \| (counter|gauge|histogram|summary) \| ([^|]*) \|")

Described = dict[str, tuple[str, frozenset[str]]]


def documented(text: str) -> Described:
    """name -> (type, labels) of every metric row in ``text``; a name listed twice is an error."""
    out: Described = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        name, kind, labels = match.groups()
        assert name not in out, f"{name} is listed twice in docs/metrics.md"
        out[name] = (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
    return out


def registered() -> Described:
    """name -> (type, labels) of every hostrefresh_ metric in the default registry, named as a user
    queries it (a counter with its _total, a histogram by its base name)."""
    for module in MODULES:
        importlib.import_module(module)
    out: Described = {}
    collectors: list[Collector] = list(REGISTRY._collector_to_names)
    for collector in collectors:
        if isinstance(collector, MetricWrapperBase):
            [family] = collector.describe()
            labels = frozenset(collector._labelnames)
            name = f"{family.name}_total" if family.type == "counter" else family.name
            out[name] = (family.type, labels)
            continue
        for family in collector.collect():  # a collector of our own computes its families at scrape time
            names: tuple[str, ...] = getattr(family, "_labelnames", ())
            out[family.name] = (family.type, frozenset(names))
    return {name: v for name, v in out.items() if name.startswith("hostrefresh_")}


def test_docs_list_every_registered_metric_and_no_other() -> None:
    doc, code = documented(DOC.read_text()), registered()
    assert len(code) >= 20 and len(doc) >= 20  # both sides were actually read
    assert sorted(code.keys() - doc.keys()) == [], "registered in the code but missing from docs/metrics.md"
    assert sorted(doc.keys() - code.keys()) == [], "in docs/metrics.md but registered nowhere in the code"
    for name, (kind, labels) in code.items():
        assert doc[name] == (kind, labels), f"{name}: docs/metrics.md says {doc[name]}, the code {(kind, labels)}"


def test_a_row_too_many_or_too_few_is_seen() -> None:
    """The comparison above can fail: a stale row, a missing row and a wrong label are each caught."""
    text = DOC.read_text()
    code = registered()
    stale = text + "\n| `hostrefresh_nested_seconds` | gauge | `node` | gone |\n"
    assert documented(stale).keys() - code.keys() == {"hostrefresh_nested_seconds"}
    missing = "\n".join(line for line in text.splitlines() if "`hostrefresh_agent_vms_lost`" not in line)
    assert code.keys() - documented(missing).keys() == {"hostrefresh_agent_vms_lost"}
    wrong = text.replace(
        "| `hostrefresh_agent_retries_total` | counter | `node` |",
        "| `hostrefresh_agent_retries_total` | counter | — |",
    )
    assert documented(wrong)["hostrefresh_agent_retries_total"] != code["hostrefresh_agent_retries_total"]


def test_the_readme_and_operations_link_the_list() -> None:
    root = DOC.parents[1]
    assert "(docs/metrics.md)" in (root / "README.md").read_text()
    assert "(metrics.md)" in (root / "docs" / "operations.md").read_text()
