"""How the operator reads API objects into the views its decisions use."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hostrefresh.api import Phase
from hostrefresh.kube.resources import NODE_LABEL, agent_lease_name
from hostrefresh.operator.kube import heartbeat_node, owned_refresh


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
