"""How the operator reads API objects into the views its decisions use."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from hostrefresh.api import Phase
from hostrefresh.api.names import NODE_ANNOTATION, NODE_LABEL, label_value
from hostrefresh.kube.names import agent_lease_name
from hostrefresh.operator.objects import agent_view, heartbeat_node, node_view, owned_refresh


def test_owned_refresh_from_a_written_status() -> None:
    spec = {"nodeName": "n01", "target": {"version": "2.0"}}
    status = {
        "phase": "Succeeded",
        "completedAt": "2026-11-24T07:00:00Z",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "False"}],
    }
    owned = owned_refresh("p-n01-abc", spec, status)
    assert (owned.name, owned.node, owned.target_version) == ("p-n01-abc", "n01", "2.0")
    assert owned.phase is Phase.SUCCEEDED and not owned.active
    assert owned.completed_at == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert not owned.degraded


def test_owned_refresh_of_a_new_or_failing_child() -> None:
    new = owned_refresh("c", {"nodeName": "n02", "target": {"version": "2.0"}}, {})
    assert new.phase is None and new.active and new.completed_at is None
    failing = owned_refresh(
        "c",
        {"nodeName": "n02", "target": {"version": "2.0"}},
        {"phase": "Migrating", "conditions": [{"type": "Degraded", "status": "True"}]},
    )
    assert failing.degraded and failing.active


@pytest.mark.parametrize(
    ("name", "namespace", "labels", "expected"),
    [
        ("hostrefresh-agent-n1", "hostrefresh-system", {NODE_LABEL: "n1"}, "n1"),
        # Elsewhere than the agents' namespace: anyone with Lease rights there could forge it.
        ("hostrefresh-agent-n1", "default", {NODE_LABEL: "n1"}, None),
        # Another name, or a label that names another node than the name does.
        ("my-lease", "hostrefresh-system", {NODE_LABEL: "n1"}, None),
        ("hostrefresh-agent-n2", "hostrefresh-system", {NODE_LABEL: "n1"}, None),
        ("hostrefresh-agent-n1", "hostrefresh-system", {}, None),
    ],
)
def test_only_the_node_agents_own_lease_is_its_heartbeat(
    name: str, namespace: str, labels: dict[str, str], expected: str | None
) -> None:
    assert agent_lease_name("n1") == "hostrefresh-agent-n1"
    assert heartbeat_node(name, namespace, labels, "hostrefresh-system") == expected


LONG_NODE = "ip-10-0-12-34.eu-west-1.compute.internal." + "rack-7.pool-gpu-a100.zone-b.example"  # 76 characters


def test_long_node_heartbeat_carries_the_name_in_an_annotation() -> None:
    short = label_value(LONG_NODE)
    assert len(LONG_NODE) > 63 and len(short) <= 63
    name = agent_lease_name(LONG_NODE)
    annotations = {NODE_ANNOTATION: LONG_NODE}
    assert heartbeat_node(name, "hostrefresh-system", {NODE_LABEL: short}, "hostrefresh-system", annotations) == (
        LONG_NODE
    )
    # The label must be the short form of the annotated node, and the Lease that node's.
    other = label_value(LONG_NODE + "x")
    assert heartbeat_node(name, "hostrefresh-system", {NODE_LABEL: other}, "hostrefresh-system", annotations) is None
    forged = {NODE_ANNOTATION: "n2"}
    assert heartbeat_node(name, "hostrefresh-system", {NODE_LABEL: short}, "hostrefresh-system", forged) is None


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize("cut", ["p", ".", "-"])
def test_long_node_names_never_share_a_lease(cut: str) -> None:
    """Node names share their first 240 characters: each still gets its own valid Lease name."""
    common = "n" + "p" * 223 + cut + "q" * 15
    first, second = common + "a", common + "b"
    names = {agent_lease_name(first), agent_lease_name(second)}
    assert len(names) == 2
    for name in names:
        assert len(name) <= 253 and DNS_SUBDOMAIN.match(name), name
    assert agent_lease_name(first) == agent_lease_name(first)  # stable: the agent and the operator agree
    assert agent_lease_name("n" * 235) == "hostrefresh-agent-" + "n" * 235  # fits: no hash


LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize(
    "name",
    [
        "n1",
        "a" * 63,
        "a" * 64,
        "a" * 253,
        LONG_NODE,
        "a" * 52 + "-" + "b" * 30,  # a cut right after a dash
        "a" * 51 + ".-" + "b" * 30,
        "x." * 126 + "y",
    ],
)
def test_label_value_fits_a_label(name: str) -> None:
    value = label_value(name)
    assert len(value) <= 63 and LABEL_VALUE.match(value), value
    assert value == name if len(name) <= 63 else value != label_value(name + "0")


def test_the_agents_capabilities_are_read_from_its_lease_and_nothing_is_assumed_without_them() -> None:
    lease = {
        "metadata": {
            "annotations": {"hostrefresh.io/capabilities": '{"kernel":"6.1","l0":"absent","l0Backend":"vmcall"}'}
        },
        "spec": {"renewTime": "2026-12-07T00:00:00Z", "leaseDurationSeconds": 30},
    }
    view = agent_view(lease)
    assert (view.l0, view.l0_backend) == ("absent", "vmcall")
    assert agent_view({"spec": {}}).l0 is None
    garbled = {"metadata": {"annotations": {"hostrefresh.io/capabilities": "{not json"}}, "spec": {}}
    assert agent_view(garbled).l0 is None


def test_a_cordon_is_read_from_spec_unschedulable_and_a_taint_alone_is_none() -> None:
    taint = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    cordoned = node_view({"metadata": {"name": "n"}, "spec": {"unschedulable": True, "taints": [taint]}})
    assert cordoned.unschedulable
    ours = {"key": "hostrefresh.io/refreshing", "effect": "NoSchedule", "value": "hr"}
    assert not node_view({"metadata": {"name": "n"}, "spec": {"taints": [ours]}}).unschedulable
    assert not node_view({"metadata": {"name": "n"}}).unschedulable
